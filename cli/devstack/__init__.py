"""What `make run` and the tests need and production never does.

SeaweedFS control, the Mercado Pago emulator, the mail sink, the demo CSD,
the local test PAC and the demo records. import-linter forbids billing/,
gateway/ and web/ from importing anything here.
"""
