# cam2drive: `make run` serves the embedded stack, `make test` runs the suite.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: run test bench install sysdeps clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# System tools the tests drive as real clients: curl (FTP, FTPS, SFTP),
# OpenSSH's sftp and lftp; pdftotext reads invoice PDFs back.
SYSTOOLS := curl:curl sftp:openssh-client lftp:lftp pdftotext:poppler-utils
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

test: install sysdeps
	$(BIN)/pytest -q

# The benchmark's peers: Debian's rclone (`rclone serve sftp`) and OpenSSH's
# sshd (sftp-server, the SSH ceiling on this machine).
bench: install sysdeps
	@missing=""; command -v rclone >/dev/null || missing="rclone"; \
	[ -x /usr/sbin/sshd ] || missing="$$missing openssh-server"; \
	if [ -n "$$missing" ]; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null); fi
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) var
