# hand_mesh_ros -- set-up, demo, tests and benchmarks on a plain machine (no ROS install needed).
# Every target creates the virtual environment it needs (.venv) from requirements.txt.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
OUT ?= out

.PHONY: demo test lint bench fit-eval docs-renders clean

# Set-up: torch core + ROS 2 Kilted from PyPI wheels, the library installed in development mode
# (compat: the source folder on sys.path), then the package's messages built with CMake into
# the venv (tools/ros_pip/build_interfaces.sh). A ROS install uses colcon instead (README).
$(STAMP): requirements.txt requirements-ros.txt setup.py package.xml CMakeLists.txt $(wildcard msg/*.msg)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt -r requirements-ros.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e . --config-settings editable_mode=compat
	tools/ros_pip/build_interfaces.sh $(VENV)
	tools/install_shared_wheels.sh $(VENV)
	touch $(STAMP)

# Main job on an embedded default input (no camera, no downloads).
demo: $(STAMP)
	$(BIN)/python -m hand_mesh_ros.ros.demo --out $(OUT)/demo

# The test suite (what CI runs): lint, then pytest.
test: $(STAMP) lint
	$(BIN)/python -m pytest -q test

lint: $(STAMP)
	$(BIN)/ruff check .

# Benchmarks print numbers; they are recorded in docs/, never asserted in tests.
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_core.py

# Test-time refinement measurement (docs/refinement.md).
fit-eval: $(STAMP)
	$(BIN)/python benchmarks/eval_refinement.py --out docs/refinement

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .ruff_cache
