"""Rendering: the weekly digest as MJML compiled once per content variant, then personalized.

The pieces, each in its own module:

- ``templates``: where the templates live (override, checkout, installed wheel) and Jinja;
- ``view``: comparison documents + derived verdicts as template-ready view models;
- ``subject``: the subject line and preheader from their configurable templates;
- ``slots``: per-recipient markers and the cheap fill (one string join per part);
- ``mjml``: MJML to inlined HTML, cached by source, checked for active content;
- ``text``: the plain-text part, from the same view;
- ``variants``: which comparisons a subscriber's categories select, and the variant key;
- ``edition``: ``EditionRenderer`` / ``CompiledVariant``, the API the delivery engine uses;
- ``compose``: a compiled variant + a ``Recipient`` = the complete ``OutgoingMessage``;
- ``archive``: the "view in browser" copy without personal parts;
- ``lint``: warnings about a finished message (the editor's preview is
  ``digest.editions.preview``: it reads the week's edition or selection).
"""

from __future__ import annotations

from digest.render.compose import Recipient, new_message_id
from digest.render.edition import CompiledVariant, EditionRenderer

__all__ = ["CompiledVariant", "EditionRenderer", "Recipient", "new_message_id"]
