#include "harness/heap_profile.h"
