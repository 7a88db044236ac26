# bench_smoke_timing: runs copycat-bench for a moment and checks that it
# works, not how fast: `throughput` with memory storage, 1 s, 2 clients,
# in-process servers; the JSON line must hold the reported fields, and bad
# options must exit 2. Run by ctest with -DCOPYCAT_BENCH=... -DWORK_DIR=...
cmake_minimum_required(VERSION 3.21)

if(NOT COPYCAT_BENCH OR NOT WORK_DIR)
  message(FATAL_ERROR "usage: cmake -DCOPYCAT_BENCH=path -DWORK_DIR=dir -P bench_smoke_test.cmake")
endif()
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

foreach(bad "bogus" "throughput;--clients;0" "throughput;--clients;300"
            "throughput;--value-bytes;-1" "throughput;--duration;abc" "throughput;--nodes;4")
  execute_process(COMMAND "${COPYCAT_BENCH}" ${bad} RESULT_VARIABLE code
                  OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 30)
  if(NOT code EQUAL 2 OR err STREQUAL "")
    message(FATAL_ERROR "copycat-bench ${bad}: expected exit 2 and a message, got ${code}: ${err}")
  endif()
endforeach()

set(json "${WORK_DIR}/smoke.json")
execute_process(
  COMMAND "${COPYCAT_BENCH}" throughput --storage memory --duration 1 --warmup 0.5 --clients 2
          --launcher in-process --data "${WORK_DIR}" --json "${json}"
  RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 90)
message(STATUS "${out}")
if(NOT code EQUAL 0)
  message(FATAL_ERROR "copycat-bench throughput failed (${code}):\n${err}")
endif()

file(STRINGS "${json}" lines)
list(LENGTH lines count)
if(NOT count EQUAL 1)
  message(FATAL_ERROR "expected one JSON line in ${json}, got ${count}")
endif()
list(GET lines 0 line)
foreach(field scenario launcher storage nodes clients value_bytes ops ops_per_s errors
              latency_ms cpu fsyncs_per_s entries_per_fsync ratios physical load_average)
  string(JSON value ERROR_VARIABLE missing GET "${line}" ${field})
  if(missing)
    message(FATAL_ERROR "field '${field}' missing from: ${line}")
  endif()
endforeach()
foreach(percentile p50 p90 p99 p999 max)
  string(JSON value ERROR_VARIABLE missing GET "${line}" latency_ms ${percentile})
  if(missing)
    message(FATAL_ERROR "latency_ms.${percentile} missing from: ${line}")
  endif()
endforeach()
string(JSON ops GET "${line}" ops)
string(JSON clients GET "${line}" clients)
string(JSON storage GET "${line}" storage)
if(ops LESS_EQUAL 0 OR NOT clients EQUAL 2 OR NOT storage STREQUAL "memory")
  message(FATAL_ERROR "unexpected result: ${line}")
endif()
foreach(chart throughput_vs_clients_in-process_memory.png latency_vs_clients_in-process_memory.png)
  if(NOT EXISTS "${WORK_DIR}/${chart}")
    message(FATAL_ERROR "chart ${chart} was not written")
  endif()
endforeach()
file(GLOB leftovers "${WORK_DIR}/copycat-bench-*")
if(leftovers)
  message(FATAL_ERROR "temporary directories left behind: ${leftovers}")
endif()
file(REMOVE_RECURSE "${WORK_DIR}")
