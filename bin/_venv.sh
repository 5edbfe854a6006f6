# Sourced by bin/demo and bin/test: create or reuse .venv with everything installed.
# torch is installed first from the pinned CPU build: an unpinned torch would pull GBs of CUDA
# wheels; constraints.txt also keeps transformers below 5 for spacy-transformers 1.4.0.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
stamp=$(cat setup.cfg constraints.txt | sha256sum | cut -c1-16)
if [ ! -f ".venv/.installed-$stamp" ]; then
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -m pip install -q -c constraints.txt torch==2.13.0 2>&1 | grep -v "^WARNING: Location" || true
  # setuptools prints an "Editable installation" notice for every editable install of a flat
  # layout (nothing to fix; it is informational): that one warning is ignored by its text
  PYTHONWARNINGS="ignore:Editable installation" \
    .venv/bin/python -m pip install -q -c constraints.txt -e ".[test,minilm]" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import spacy_evokd.registrations, spacy_transformers, torch" || { echo "install failed" >&2; exit 1; }
  rm -f .venv/.installed-*; touch ".venv/.installed-$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
