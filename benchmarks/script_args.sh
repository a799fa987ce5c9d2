# Shared by the benchmark scripts' option parsers (sourced, not run).
# need_value OPTION [VALUE ...]: stop with status 2 unless OPTION has a value.
need_value() {
    if [[ $# -lt 2 || -z "$2" ]]; then
        echo "error: $1 needs a value" >&2
        exit 2
    fi
}
