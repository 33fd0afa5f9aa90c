"""The chat UI: `pgask ui` runs app.py with Streamlit."""
