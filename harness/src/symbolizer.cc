#include "harness/symbolizer.h"
