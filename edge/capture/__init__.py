"""Where frames come from: camera sources, still pictures, and a camera that never hangs."""
