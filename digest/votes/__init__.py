"""Reader votes: "Would you ship it?" links in every card, recorded by a button press only, and
counted into each tool's community verdict (``digest.content.verdicts.community_verdict``)."""
