"""Test doubles: protocol-faithful fakes of the Telegram Bot API and of Twilio on 127.0.0.1, an
in-memory scripted provider, and the crash harness. Tests and benchmarks use them; the product
never imports them."""
