"""Sphinx configuration for atasker's documentation."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "atasker"
author = "atasker contributors"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]
master_doc = "index"
autodoc_member_order = "bysource"
html_theme = "alabaster"
