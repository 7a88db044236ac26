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
            "throughput;--value-bytes;-1" "throughput;--duration;abc" "throughput;--nodes;4"
            "charts" "throughput;--from;x.json")
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
foreach(figure fdatasync_per_s fdatasync_p50_ms quorum_sync_p50_ms pair_sync_p50_ms
               concurrent_syncs_per_s loopback_rtt_us)
  string(JSON value ERROR_VARIABLE missing GET "${line}" physical ${figure})
  if(missing OR value LESS_EQUAL 0)
    message(FATAL_ERROR "physical.${figure} missing or not positive in: ${line}")
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
# The charts mode draws saved results: this run's line beside an etcd put of
# scripts/bench-etcd.sh (its reads are left out); a bad line or a missing
# file is an error naming it (exit 1), and nothing is drawn.
set(etcd "${WORK_DIR}/etcd.jsonl")
file(WRITE "${etcd}"
  "{\"system\":\"etcd\",\"version\":\"3.4.23\",\"op\":\"put\",\"clients\":2,\"value_bytes\":256,"
  "\"ops_per_s\":900,\"latency_ms\":{\"p50\":2,\"p90\":3,\"p99\":7,\"p999\":9,\"max\":12},"
  "\"cluster_size\":3}\n"
  "{\"system\":\"etcd\",\"op\":\"get-linearizable\",\"clients\":16,\"ops_per_s\":5000}\n")
set(drawn "${WORK_DIR}/drawn")
execute_process(
  COMMAND "${COPYCAT_BENCH}" charts --from "${json}" --from "${etcd}" --charts "${drawn}"
  RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
if(NOT code EQUAL 0)
  message(FATAL_ERROR "copycat-bench charts failed (${code}):\n${err}")
endif()
foreach(chart throughput_vs_clients_etcd+in-process_disk+memory.png
              latency_p50_p99_vs_clients_etcd+in-process_disk+memory.png
              latency_vs_clients_in-process_memory.png latency_vs_clients_etcd_disk.png)
  if(NOT EXISTS "${drawn}/${chart}")
    message(FATAL_ERROR "charts: ${chart} was not written; output:\n${out}")
  endif()
endforeach()
file(GLOB drawnFiles "${drawn}/*")
list(LENGTH drawnFiles drawnCount)
if(NOT drawnCount EQUAL 4)
  message(FATAL_ERROR "charts: expected 4 charts, got ${drawnFiles}")
endif()
set(damaged "${WORK_DIR}/damaged.jsonl")
file(WRITE "${damaged}" "{\"scenario\":\"throughput\"}\n{not json\n")
foreach(bad "${damaged}" "${WORK_DIR}/missing.jsonl")
  file(REMOVE_RECURSE "${WORK_DIR}/none")
  execute_process(
    COMMAND "${COPYCAT_BENCH}" charts --from "${json}" --from "${bad}" --charts "${WORK_DIR}/none"
    RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
  get_filename_component(badName "${bad}" NAME)
  if(NOT code EQUAL 1 OR NOT err MATCHES "${badName}" OR EXISTS "${WORK_DIR}/none")
    message(FATAL_ERROR "charts --from ${bad}: expected exit 1 naming the file, got ${code}: ${err}")
  endif()
endforeach()

file(GLOB leftovers "${WORK_DIR}/copycat-bench-*")
if(leftovers)
  message(FATAL_ERROR "temporary directories left behind: ${leftovers}")
endif()
file(REMOVE_RECURSE "${WORK_DIR}")
