"""The web app (`cleanfeed gui`): click what to remove, preview the tracking, run, download.

session.py holds the logic and is plain Python (tested without a browser); app.py is the
Gradio layout; nothing here imports Gradio except app.py.
"""
