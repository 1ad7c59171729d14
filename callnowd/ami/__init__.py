"""Asterisk protocols: AMI client, FastAGI server, wire codecs and a simulator."""
