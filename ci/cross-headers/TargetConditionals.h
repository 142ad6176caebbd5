/* Stand-in for ci/cross-check.sh (compile checks only): see README.md.
   The macOS values (not iOS, tvOS or watchOS). */
#ifndef CROSS_CHECK_TARGET_CONDITIONALS_H
#define CROSS_CHECK_TARGET_CONDITIONALS_H
#define TARGET_OS_MAC 1
#define TARGET_OS_OSX 1
#define TARGET_OS_IPHONE 0
#define TARGET_OS_IOS 0
#define TARGET_OS_TV 0
#define TARGET_OS_WATCH 0
#define TARGET_OS_SIMULATOR 0
#endif
