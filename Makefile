# cam2drive: `make run` serves the embedded stack, `make test` runs the suite.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
UV      := $(BIN)/uv pip install -q --python $(BIN)/python
# pytest-xdist workers: each starts its own SeaweedFS and PostgreSQL database.
TEST_WORKERS ?= 2

.PHONY: run test test-fast lint lock bench install sysdeps clean

# Exactly the versions in requirements.lock (uv resolves and installs them
# several times faster than pip); `make lock` refreshes the lock.
$(STAMP): pyproject.toml requirements.lock
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q uv==0.13.8
	$(UV) -r requirements.lock
	$(UV) --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

lock:
	$(BIN)/uv pip compile pyproject.toml --extra test --python-version 3.11 --no-header \
		-o requirements.lock

# System tools the tests drive as real clients: curl (FTP, FTPS, SFTP),
# OpenSSH's sftp and lftp; pdftotext reads invoice PDFs back; ffmpeg remuxes Dahua .dav
# clips for the browser (its dhav demuxer) and makes the tests' .dav files.
# Debian's chromium is the browser the portal tests drive with Playwright (never
# `playwright install`, which downloads one).
SYSTOOLS := curl:curl sftp:openssh-client lftp:lftp pdftotext:poppler-utils ffmpeg:ffmpeg \
	chromium:chromium
# Libraries WeasyPrint renders invoice PDFs with (satcfdi's PDF output), and a font.
SYSLIBS := libpango-1.0.so.0:libpango-1.0-0 libpangoft2-1.0.so.0:libpangoft2-1.0-0 \
	libharfbuzz-subset.so.0:libharfbuzz-subset0
FONT := /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
sysdeps:
	@missing=""; for t in $(SYSTOOLS); do command -v $${t%%:*} >/dev/null || missing="$$missing $${t##*:}"; done; \
	for l in $(SYSLIBS); do ldconfig -p | grep -q "$${l%%:*}" || missing="$$missing $${l##*:}"; done; \
	[ -e $(FONT) ] || missing="$$missing fonts-dejavu-core"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null; \
	fi

run: install sysdeps
	$(BIN)/cam2drive dev run

# The layering (import-linter), style (ruff) and types (mypy) of ARCHITECTURE.md.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

test: lint sysdeps
	$(BIN)/pytest -q -n $(TEST_WORKERS)

# The unit tests alone (no SeaweedFS, database or gateway): seconds.
test-fast: install
	$(BIN)/pytest -q -m unit

# The benchmark's peers: Debian's rclone (`rclone serve sftp`) and OpenSSH's
# sshd (sftp-server, the SSH ceiling on this machine).
bench: install sysdeps
	@missing=""; command -v rclone >/dev/null || missing="rclone"; \
	[ -x /usr/sbin/sshd ] || missing="$$missing openssh-server"; \
	if [ -n "$$missing" ]; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null); fi
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) var
