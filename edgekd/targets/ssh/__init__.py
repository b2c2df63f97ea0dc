"""SSH targets: a Raspberry Pi or any Linux board reached over OpenSSH, host keys verified."""
