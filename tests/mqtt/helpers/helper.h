/* mqtt_helper: shared declarations between helper.c and load.c (tests only). */
#ifndef MQTT_TEST_HELPER_H
#define MQTT_TEST_HELPER_H
int helper_load(int argc, char **argv);
#endif
