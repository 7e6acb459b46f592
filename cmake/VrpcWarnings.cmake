# SPDX-License-Identifier: MIT
# Project-wide warnings and the sanitizer switch. vrpc_target_defaults() is
# applied to every project target; sim's drop-in hypervisor libraries opt out
# of the sanitizers (they are loaded into unmodified Xen binaries, where an
# ASan runtime would not come first).

set(VRPC_WARNINGS -Wall -Wextra -Wvla -Wformat=2 -Wstrict-prototypes
    -Wmissing-prototypes -Wshadow -Wno-unused-parameter
    -fstack-protector-strong)
if(VRPC_WERROR)
  list(APPEND VRPC_WARNINGS -Werror)
endif()

set(VRPC_SAN_FLAGS -fsanitize=address,undefined -fno-omit-frame-pointer
    -fno-sanitize-recover=undefined)

function(vrpc_target_defaults tgt)
  set(opts NO_SANITIZE)
  cmake_parse_arguments(A "${opts}" "" "" ${ARGN})
  target_compile_options(${tgt} PRIVATE ${VRPC_WARNINGS})
  target_compile_definitions(${tgt} PRIVATE _GNU_SOURCE)
  if(VRPC_SANITIZE AND NOT A_NO_SANITIZE)
    target_compile_options(${tgt} PRIVATE ${VRPC_SAN_FLAGS})
    target_link_options(${tgt} PRIVATE ${VRPC_SAN_FLAGS})
  endif()
endfunction()
