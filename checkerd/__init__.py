"""The checker role: health checks of real servers; it only reports, it never touches the kernel."""
