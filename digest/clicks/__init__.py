"""Engagement: tracked links, their raw hits, and the rules that tell people from link scanners."""
