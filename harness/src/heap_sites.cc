#include "harness/heap_sites.h"
