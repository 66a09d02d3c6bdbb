# ac_add_fuzz_target(NAME LIB): tests/fuzz/fuzz_NAME.c over the library LIB.
# With -DAC_FUZZ=ON (clang) it is a libFuzzer binary fuzz_NAME
# (tests/fuzz/run_fuzz.sh runs it); otherwise a small main (tests/fuzz/replay_main.c)
# replays the same corpus through the same entry point. Either way ctest runs the
# seed corpus tests/fuzz/corpus/NAME as the test fuzz_corpus_NAME, so CI checks
# every seed and every kept crash input.
function(ac_add_fuzz_target name lib)
  set(src ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_${name}.c)
  set(corpus ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/${name})
  if(AC_FUZZ)
    add_executable(fuzz_${name} ${src})
    target_link_libraries(fuzz_${name} ${lib})
    target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
    add_test(NAME fuzz_corpus_${name} COMMAND fuzz_${name} -runs=0 ${corpus})
  else()
    add_executable(fuzz_${name}_replay ${src} ${PROJECT_SOURCE_DIR}/tests/fuzz/replay_main.c)
    target_link_libraries(fuzz_${name}_replay ${lib})
    add_test(NAME fuzz_corpus_${name} COMMAND fuzz_${name}_replay ${corpus})
  endif()
endfunction()
