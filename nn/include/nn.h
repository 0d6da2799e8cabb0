#ifndef NN_H
#define NN_H
typedef enum { NN_OK = 0 } nn_status;
const char *nn_strerror(nn_status s);
#endif
