/* A stand-in for the Apple SDK's TargetConditionals.h, for scripts/check-targets.sh only: cargo check
   of the macOS targets compiles ring's and wasmtime's C sources (their build scripts)
   but links nothing, so declarations are enough. Never used to build a binary. */
#pragma once
#define TARGET_OS_MAC 1
#define TARGET_OS_OSX 1
#define TARGET_OS_IPHONE 0
#define TARGET_OS_IOS 0
#define TARGET_OS_WATCH 0
#define TARGET_OS_TV 0
#define TARGET_OS_SIMULATOR 0
