"""The trainer's data stages: search and download pictures (scrape, download, engines), cut faces
out of them (ingest), read FER2013 (fer2013), hold out a test split of pictures (holdout), and the
face data sets fit reads (datasets: .npz or <label>/ folders)."""
