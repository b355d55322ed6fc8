"""The meta-learners: the network, the learners and a plain reference loop."""
