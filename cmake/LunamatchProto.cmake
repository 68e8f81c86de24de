# lm_protobuf_c(OUT_SRCS OUT_HDRS proto...): generate C code with protoc-c at
# build time into ${CMAKE_BINARY_DIR}/gen. Generated code is never committed.
function(lm_protobuf_c out_srcs out_hdrs)
  set(gen_dir ${CMAKE_BINARY_DIR}/gen)
  set(srcs)
  set(hdrs)
  foreach(proto ${ARGN})
    get_filename_component(abs ${proto} ABSOLUTE)
    file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR}/proto ${abs})
    string(REGEX REPLACE "\\.proto$" "" stem ${rel})
    set(c ${gen_dir}/${stem}.pb-c.c)
    set(h ${gen_dir}/${stem}.pb-c.h)
    add_custom_command(
      OUTPUT ${c} ${h}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${gen_dir}
      COMMAND ${PROTOC_C} --c_out=${gen_dir} -I ${PROJECT_SOURCE_DIR}/proto ${abs}
      DEPENDS ${abs}
      COMMENT "protoc-c ${rel}"
      VERBATIM)
    list(APPEND srcs ${c})
    list(APPEND hdrs ${h})
  endforeach()
  set(${out_srcs} ${srcs} PARENT_SCOPE)
  set(${out_hdrs} ${hdrs} PARENT_SCOPE)
endfunction()
