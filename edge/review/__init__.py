"""The review web app: a keyboard-driven page over the face log (or a folder of face pictures).

``sources`` defines what the page reviews (the store, or a folder with a labels.csv beside its
pictures), ``server`` the FastAPI app, ``static/`` the page (plain HTML/CSS/JS, no build step).
FastAPI is imported only by ``server``, so the daemon never pays for it.
"""
