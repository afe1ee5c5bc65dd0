# Kubernetes, KServe and monitoring manifests (deploy/k8s, deploy/monitoring):
# lint, render and check their invariants. Included by tests/deploy/
# CMakeLists.txt; needs no build products. Tools that are not installed make
# a test skip (exit 77), never fail.
get_filename_component(FLEXOR_K8S_REPO_ROOT "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)

# Debian's python3 carries python3-yaml; a virtualenv's python3 first on
# PATH may not.
find_program(FLEXOR_K8S_PYTHON3 NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT FLEXOR_K8S_PYTHON3)
  find_program(FLEXOR_K8S_PYTHON3 NAMES python3)
endif()

add_test(NAME deploy_yamllint
  COMMAND sh "${CMAKE_CURRENT_LIST_DIR}/k8s_lint.sh" yamllint
  WORKING_DIRECTORY "${FLEXOR_K8S_REPO_ROOT}")
add_test(NAME deploy_kustomize
  COMMAND sh "${CMAKE_CURRENT_LIST_DIR}/k8s_lint.sh" kustomize
  WORKING_DIRECTORY "${FLEXOR_K8S_REPO_ROOT}")
set(flexor_k8s_tests deploy_yamllint deploy_kustomize)

if(FLEXOR_K8S_PYTHON3)
  add_test(NAME deploy_manifest_check
    COMMAND "${FLEXOR_K8S_PYTHON3}" "${CMAKE_CURRENT_LIST_DIR}/check_manifests.py"
            --repo "${FLEXOR_K8S_REPO_ROOT}"
    WORKING_DIRECTORY "${FLEXOR_K8S_REPO_ROOT}")
  add_test(NAME deploy_manifest_check_selftest
    COMMAND "${FLEXOR_K8S_PYTHON3}" "${CMAKE_CURRENT_LIST_DIR}/check_manifests.py"
            --repo "${FLEXOR_K8S_REPO_ROOT}" --selftest
    WORKING_DIRECTORY "${FLEXOR_K8S_REPO_ROOT}")
  list(APPEND flexor_k8s_tests deploy_manifest_check deploy_manifest_check_selftest)
else()
  message(STATUS "python3 not found: deploy_manifest_check tests not registered")
endif()

set_tests_properties(${flexor_k8s_tests} PROPERTIES
  LABELS deploy
  SKIP_RETURN_CODE 77
  TIMEOUT 120)
