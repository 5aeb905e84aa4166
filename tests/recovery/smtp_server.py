"""A small real SMTP server for the tests: STARTTLS or TLS from the first byte, with a
self-signed certificate made here (its own CA file), optional AUTH PLAIN; records the messages
it accepted. ``mode``: ``ok``, ``refuse_recipient`` (550 at RCPT),
``refuse_recipient_quoting`` (550 at RCPT quoting the address in upper case), ``unavailable``
(421 at the greeting)."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import socketserver
import ssl
import threading
from email import message_from_bytes, policy
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class SmtpServer:
    def __init__(self, directory: Path, implicit_tls: bool = False, username: str = "", password: str = "") -> None:
        self.cert, key = self_signed(directory)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(self.cert, key)
        self.mode = "ok"
        self.messages: list[dict] = []
        self.sessions: list[dict] = []  # per connection: tls, auth
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def setup(self):
                if implicit_tls:
                    self.request = server.context.wrap_socket(self.request, server_side=True)
                super().setup()
                self.state = {"tls": implicit_tls, "auth": None}
                server.sessions.append(self.state)

            def reply(self, line: str) -> None:
                self.wfile.write((line + "\r\n").encode())
                self.wfile.flush()

            def handle(self):
                if server.mode == "unavailable":
                    self.reply("421 service not available")
                    return
                self.reply("220 localhost test SMTP")
                sender, recipients = None, []
                while True:
                    raw = self.rfile.readline(4096)
                    if not raw:
                        return
                    line = raw.decode(errors="replace").rstrip("\r\n")
                    verb = line.split(" ", 1)[0].upper()
                    if verb in ("EHLO", "HELO"):
                        lines = ["250-localhost"]
                        if not self.state["tls"]:
                            lines.append("250-STARTTLS")
                        if username:
                            lines.append("250-AUTH PLAIN")
                        lines.append("250 8BITMIME")
                        for item in lines:
                            self.reply(item)
                    elif verb == "STARTTLS":
                        self.reply("220 ready for TLS")
                        self.request = server.context.wrap_socket(self.request, server_side=True)
                        self.rfile = self.request.makefile("rb")
                        self.wfile = self.request.makefile("wb")
                        self.state["tls"] = True
                    elif verb == "AUTH":
                        parts = line.split(" ")
                        blob = base64.b64decode(parts[2]) if len(parts) > 2 else b""
                        _, user, secret = (blob.split(b"\0") + [b"", b""])[:3]
                        if user.decode() == username and secret.decode() == password:
                            self.state["auth"] = user.decode()
                            self.reply("235 ok")
                        else:
                            self.reply("535 authentication failed")
                    elif verb == "MAIL":
                        if username and not self.state["auth"]:
                            self.reply("530 authentication required")
                            continue
                        sender, recipients = line[10:].strip("<> "), []
                        self.reply("250 ok")
                    elif verb == "RCPT":
                        if server.mode == "refuse_recipient":
                            self.reply("550 no such user")
                            continue
                        if server.mode == "refuse_recipient_quoting":  # the address echoed, upper case
                            self.reply(f"550 5.1.1 <{line[8:].strip('<> ').upper()}>: Recipient address rejected")
                            continue
                        recipients.append(line[8:].strip("<> "))
                        self.reply("250 ok")
                    elif verb == "DATA":
                        self.reply("354 go on")
                        data = b""
                        while True:
                            chunk = self.rfile.readline(65536)
                            if chunk in (b".\r\n", b".\n", b""):
                                break
                            data += chunk[1:] if chunk.startswith(b"..") else chunk
                        message = message_from_bytes(data, policy=policy.default)
                        server.messages.append({"from": sender, "to": recipients, "tls": self.state["tls"],
                                                "subject": str(message["Subject"]),
                                                "body": message.get_body().get_content()})
                        self.reply("250 queued")
                    elif verb == "RSET":
                        sender, recipients = None, []
                        self.reply("250 ok")
                    elif verb == "NOOP":
                        self.reply("250 ok")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 not implemented")

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
