"""The ims_kit dashboard: `streamlit run app.py` (reads IMS_DB or the default database).

The pages live in app_pages/; this entrypoint sets up navigation and the global filters
(time range, vendors, models) that every page reads from st.session_state.
"""

from pathlib import Path

import streamlit as st

from app_pages import _shared as shared

# A local icon: a :material/...: page icon makes the browser fetch it from fonts.gstatic.com
ICON = str(Path(__file__).parent / "app_pages" / "icon.png")
st.set_page_config(page_title="ims_kit", page_icon=ICON, layout="wide")

PAGES = [
    st.Page("app_pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("app_pages/cost.py", title="Cost", icon=":material/payments:"),
    st.Page("app_pages/latency.py", title="Latency", icon=":material/speed:"),
    st.Page("app_pages/circuits.py", title="Circuits", icon=":material/electrical_services:"),
    st.Page("app_pages/registry.py", title="Registry", icon=":material/list_alt:"),
    st.Page("app_pages/workflows.py", title="Workflows", icon=":material/account_tree:"),
    st.Page("app_pages/events.py", title="Events", icon=":material/receipt_long:"),
]

page = st.navigation(PAGES)
shared.stop_unless_ready()
shared.sidebar()
page.run()
