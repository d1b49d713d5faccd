"""The ims_kit dashboard: `streamlit run app.py` (reads IMS_DB or the default database)."""

import streamlit as st

import ims_kit

st.set_page_config(page_title="ims_kit", layout="wide")


@st.cache_resource
def kit():
    return ims_kit.open()


st.title("ims_kit")
registry = kit().registry
if len(registry) == 0:
    st.info("The registry is empty: run `ims init` to create and seed the database.")
else:
    figures = kit().metrics()
    cols = st.columns(3)
    cols[0].metric("Models registered", figures["total_models_registered"])
    cols[1].metric("Model queries", figures["total_model_queries"])
    cols[2].metric("Filter queries", figures["total_filter_queries"])
    st.dataframe(registry.to_frame(), hide_index=True)
