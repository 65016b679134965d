"""What tests share: the stack harness, the billing clock, the recorder emulator."""
