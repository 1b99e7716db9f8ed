#ifndef SEC1000_CMODBUS_SHIM_H
#define SEC1000_CMODBUS_SHIM_H

#include <modbus/modbus.h>
#include <errno.h>

/* libmodbus's EMBX* error numbers and MODBUS_*_SIZE limits are macros Swift cannot import. */
static const int sec1000_modbus_enobase = MODBUS_ENOBASE;
static const int sec1000_embmdata = EMBMDATA;
static const int sec1000_modbus_tcp_max_adu_length = MODBUS_TCP_MAX_ADU_LENGTH;
static const int sec1000_modbus_max_read_registers = MODBUS_MAX_READ_REGISTERS;

#endif
