"""A fake CyTube server and scripted users: the test double for end-to-end tests and the room
behind ``daz sandbox``. It behaves as docs/reference cytube-server-captures.md describes."""
