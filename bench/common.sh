# Shell functions the bench scripts share; each script sources this file.

# Exits with a message unless every named variable holds a whole number of at least 1
# (the value of option --NAME).
whole_numbers() {
  local name
  for name in "$@"; do
    if [[ ! ${!name} =~ ^[1-9][0-9]*$ ]]; then
      echo "--$name needs a whole number of at least 1, got '${!name}'" >&2
      exit 2
    fi
  done
}

# Sets `venv` to the PyTorch venv outside the repository ($BENCH_VENV, default
# ~/.cache/backprop/bench-venv), creating it with torch and numpy on first use.
torch_venv() {
  venv=${BENCH_VENV:-$HOME/.cache/backprop/bench-venv}
  if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import torch, numpy' 2>/dev/null; then
    echo "creating $venv with torch and numpy (one-time, large download)..." >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q torch numpy
  fi
}

# Builds the bench example and sets `data_dir` to the MNIST folder it reads (fetching
# the data if needed), so that every implementation is handed the same directory.
bench_and_data() {
  cargo build --release --example bench >&2
  data_dir=$(./target/release/examples/bench --locate-data)
}
