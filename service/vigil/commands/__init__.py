"""Cloud-to-device commands: the control plane's way in over Kafka.

``messages`` (the accepted forms) · ``processor`` (validate and apply one message) ·
``dead_letters`` (what a rejected message becomes) · ``consumer`` (the Kafka loop) ·
``applied`` (command ids already applied, for at-most-once).
"""
