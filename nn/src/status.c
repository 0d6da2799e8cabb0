#include "nn.h"
const char *nn_strerror(nn_status s) { (void)s; return "x"; }
