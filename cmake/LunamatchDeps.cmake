# Third-party dependencies, all from the distribution (no vendored copies).
find_package(PkgConfig REQUIRED)
pkg_check_modules(PROTOBUFC REQUIRED IMPORTED_TARGET libprotobuf-c>=1.4)
pkg_check_modules(RDKAFKA REQUIRED IMPORTED_TARGET rdkafka>=2.0)
pkg_check_modules(LMDB REQUIRED IMPORTED_TARGET lmdb)
pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson>=2.13)
find_package(nng 1.5 CONFIG REQUIRED)
find_package(Threads REQUIRED)
find_program(PROTOC_C protoc-c REQUIRED)
