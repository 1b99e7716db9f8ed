#ifndef SEC1000_CMOSQUITTO_SHIM_H
#define SEC1000_CMOSQUITTO_SHIM_H

#include <mosquitto.h>
#include <mqtt_protocol.h>

/* Macros Swift cannot import as they stand (parenthesised shifts), as constants. */
static const int sec1000_mosq_log_err = MOSQ_LOG_ERR;
static const int sec1000_mosq_log_warning = MOSQ_LOG_WARNING;
static const int sec1000_mosq_log_notice = MOSQ_LOG_NOTICE;
static const int sec1000_mosq_log_info = MOSQ_LOG_INFO;
/* MQTT's own limit on a packet's remaining length: the largest payload a PUBLISH can carry. */
static const int sec1000_mqtt_max_payload = MQTT_MAX_PAYLOAD;

#endif
