"""A fake CyTube server and scripted users: the test double for end-to-end tests and the room
behind ``daz sandbox``. It behaves as a live CyTube server was seen to behave."""
