"""Per-frame vision stages: detect faces, track them, crop and classify them."""
