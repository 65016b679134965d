"""Protocol gateways (FTP, SFTP) over one ingest pipeline and one drive view.

pyOpenSSL is installed for FTPS, yet two libraries load it on import
whether FTPS is used or not: `pyftpdlib.handlers` (to define its TLS
classes) and `botocore.httpsession` (through `urllib3.contrib.pyopenssl`,
only to name urllib3's standard-library `SSLContext`, the class it falls
back to without it). Loaded, pyOpenSSL and cryptography add ~11 MB to a
plain-FTP gateway's RSS (BENCHMARKS.md, ingest). Both are imported here
with pyOpenSSL hidden; FTPS takes its classes from `pyftpdlib.handlers.ftps`,
which imports pyOpenSSL itself once a certificate is configured.
"""

import sys


def _import_without_pyopenssl() -> None:
    if "OpenSSL" in sys.modules:  # already loaded by someone else: nothing to save
        return
    sys.modules["OpenSSL"] = None  # type: ignore[assignment]  # `import OpenSSL` fails
    try:
        import botocore.httpsession  # noqa: F401
        import pyftpdlib.handlers  # noqa: F401
    finally:
        del sys.modules["OpenSSL"]


_import_without_pyopenssl()
