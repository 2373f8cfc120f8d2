#include "harness/suppressions.h"
