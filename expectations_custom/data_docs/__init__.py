"""Data Docs extensions through GX's own extension points: the build of a run's pages and index
(``build``), the site builder that copies GX's static files once (``site_builder``), the home page
with the health link (``site_index``) and the results store listed once per build (``results_store``)."""
