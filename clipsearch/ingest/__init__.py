"""Adding files to a library: one run (scan -> diff -> decode -> encode -> commit) and the
watch daemon that drives runs from file-system events."""
