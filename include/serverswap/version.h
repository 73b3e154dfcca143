/* Version of the serverswap client library and of the wire protocol it speaks
 * (docs/protocol.md). Plain macros, usable from C and C++; nothing here has state, so there
 * is nothing to be thread-safe about. */
#ifndef SERVERSWAP_VERSION_H_
#define SERVERSWAP_VERSION_H_

#define SERVERSWAP_VERSION_MAJOR 0
#define SERVERSWAP_VERSION_MINOR 1
#define SERVERSWAP_VERSION_PATCH 0
#define SERVERSWAP_VERSION_STRING "0.1.0"

/* The `protocol` number this library sends in `hello`. */
#define SERVERSWAP_PROTOCOL_VERSION 1

#endif /* SERVERSWAP_VERSION_H_ */
