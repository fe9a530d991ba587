# frozen_string_literal: true

# Service-to-service mTLS through the Ruby SDK against plain Ruby TLS, as JSON.
#
#   ruby -I sdk-ruby/lib benchmarks/sdk_ruby_mtls.rb [--requests N] [--handshakes N] [--rounds N] [--out FILE]
#
# One run measures both setups on the same certificates (a CA, a server and
# a client X509-SVID written to PEM files, as another process would keep
# them):
#
# - plain: OpenSSL::SSL::SSLServer with one SSLContext loaded from the files,
#   and Net::HTTP with the client's certificate, key and a store of the CA
#   loaded once (no host name check);
# - sdk: Secinfra::MTLS.server and Secinfra::MTLS.http from a
#   Secinfra::StaticIdentity of the same files, each with an ID authorizer:
#   a context per snapshot, the X509-SVID rules and the authorizer in every
#   handshake, the post-handshake check.
#
# For each: full handshakes per second (a new connection, one request,
# closed; no session resumption on either side) and requests per second over
# kept-alive connections, by the wall clock and per CPU second of this
# process. Server and client run in this process (threads), so a rate covers
# the cost of both sides, and the CPU rates hold on a machine busy with
# other work, where the wall rates do not. Both servers run at once and the
# batches alternate plain, sdk, sdk, plain, ... so that both see the same
# drift. Bounded: --handshakes connections and --requests requests per setup.

require "json"
require "logger"
require "net/http"
require "openssl"
require "optparse"
require "socket"
require "tmpdir"
require "secinfra"

TRUST_DOMAIN = "secinfra.local"
SERVER_ID = "spiffe://#{TRUST_DOMAIN}/bench/server"
CLIENT_ID = "spiffe://#{TRUST_DOMAIN}/bench/client"
BODY = "ok"

# A CA, and X509-SVIDs it signs, as PEM files in +dir+.
def write_certificates(dir)
  ca_key = OpenSSL::PKey::EC.generate("prime256v1")
  ca = certificate(ca_key, ca_key, nil, "URI:spiffe://#{TRUST_DOMAIN}", ca: true)
  File.write(File.join(dir, "bundle.pem"), ca.to_pem)
  { "server" => SERVER_ID, "client" => CLIENT_ID }.each do |name, id|
    key = OpenSSL::PKey::EC.generate("prime256v1")
    File.write(File.join(dir, "#{name}.pem"), certificate(key, ca_key, ca, "URI:#{id}", ca: false).to_pem)
    File.write(File.join(dir, "#{name}-key.pem"), key.private_to_pem)
  end
end

def certificate(key, signer, issuer, san, ca:)
  cert = OpenSSL::X509::Certificate.new
  cert.version = 2
  cert.serial = OpenSSL::BN.rand(64)
  cert.subject = OpenSSL::X509::Name.parse(ca ? "/CN=bench CA" : "/")
  cert.issuer = issuer ? issuer.subject : cert.subject
  cert.public_key = key
  cert.not_before = Time.now - 60
  cert.not_after = Time.now + 3600
  ef = OpenSSL::X509::ExtensionFactory.new(issuer || cert, cert)
  cert.add_extension(ef.create_extension("basicConstraints", ca ? "CA:TRUE" : "CA:FALSE", true))
  cert.add_extension(ef.create_extension("keyUsage", ca ? "keyCertSign,cRLSign" : "digitalSignature", true))
  cert.add_extension(ef.create_extension("extendedKeyUsage", "serverAuth,clientAuth", false)) unless ca
  cert.add_extension(ef.create_extension("subjectAltName", san, false))
  cert.sign(signer, OpenSSL::Digest.new("SHA256"))
end

# Answers every HTTP/1.1 request on +ssl+ with BODY, until the peer closes.
def respond(ssl)
  while (line = ssl.gets)
    line = ssl.gets until line.nil? || line == "\r\n"
    ssl.write("HTTP/1.1 200 OK\r\nContent-Length: #{BODY.bytesize}\r\n\r\n#{BODY}")
  end
rescue IOError, SystemCallError, OpenSSL::SSL::SSLError
  nil
ensure
  ssl.close
end

# The plain setup: one context from the files, OpenSSL::SSL::SSLServer.
def plain_server(dir)
  context = OpenSSL::SSL::SSLContext.new
  context.cert = OpenSSL::X509::Certificate.new(File.read(File.join(dir, "server.pem")))
  context.key = OpenSSL::PKey.read(File.read(File.join(dir, "server-key.pem")))
  context.ca_file = File.join(dir, "bundle.pem")
  context.verify_mode = OpenSSL::SSL::VERIFY_PEER | OpenSSL::SSL::VERIFY_FAIL_IF_NO_PEER_CERT
  context.min_version = OpenSSL::SSL::TLS1_2_VERSION
  context.session_cache_mode = OpenSSL::SSL::SSLContext::SESSION_CACHE_OFF
  context.options |= OpenSSL::SSL::OP_NO_TICKET
  listener = OpenSSL::SSL::SSLServer.new(TCPServer.new("127.0.0.1", 0), context)
  thread = Thread.new do
    loop do
      ssl = listener.accept
      ssl.io.setsockopt(Socket::IPPROTO_TCP, Socket::TCP_NODELAY, 1) # as Secinfra::MTLS::Server does
      Thread.new { respond(ssl) }
    rescue OpenSSL::SSL::SSLError, SystemCallError
      next
    rescue IOError
      break
    end
  end
  [listener.to_io.local_address.ip_port, -> { listener.close; thread.join(5) }]
end

# The plain client's files, loaded once (as the SDK's source is).
def plain_files(dir)
  store = OpenSSL::X509::Store.new
  store.add_file(File.join(dir, "bundle.pem"))
  { cert: OpenSSL::X509::Certificate.new(File.read(File.join(dir, "client.pem"))),
    key: OpenSSL::PKey.read(File.read(File.join(dir, "client-key.pem"))), store: store }
end

def plain_client(files, port)
  http = Net::HTTP.new("127.0.0.1", port)
  http.use_ssl = true
  http.cert = files[:cert]
  http.key = files[:key]
  http.cert_store = files[:store]
  http.verify_mode = OpenSSL::SSL::VERIFY_PEER
  http.verify_hostname = false
  http
end

def static_source(dir, name)
  Secinfra::StaticIdentity.from_files(bundle_file: File.join(dir, "bundle.pem"), cert_file: File.join(dir, "#{name}.pem"),
                                      key_file: File.join(dir, "#{name}-key.pem"))
end

# The SDK setup: Secinfra::MTLS.server from a static source.
def sdk_server(dir)
  server = Secinfra::MTLS.server(TCPServer.new("127.0.0.1", 0), static_source(dir, "server"),
                                 authorizer: Secinfra::MTLS::Authorizer.id(CLIENT_ID))
  thread = Thread.new { server.serve { |ssl| respond(ssl) } }
  [server.port, -> { server.close; thread.join(5) }]
end

def sdk_client(source, port)
  Secinfra::MTLS.http("127.0.0.1", port, source, authorizer: Secinfra::MTLS::Authorizer.id(SERVER_ID))
end

# Wall and CPU seconds of the block (CPU: this process, so both sides).
def timed
  wall = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  cpu = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID)
  yield
  [Process.clock_gettime(Process::CLOCK_MONOTONIC) - wall, Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID) - cpu]
end

# Times of one batch: {handshakes: [wall, cpu], requests: [wall, cpu]}. One
# client object per batch, as a service keeps one: each start opens a new
# connection (a full handshake: neither server resumes sessions).
def batch(make_client, handshakes, requests)
  times = {}
  http = make_client.call
  times[:handshakes] = timed do
    handshakes.times { http.start { |h| h.get("/").body == BODY or raise "bad answer" } }
  end
  http.start do |h|
    h.get("/") # the handshake is not part of the request rate
    times[:requests] = timed { requests.times { h.get("/").body == BODY or raise "bad answer" } }
  end
  times
end

def rates(total, handshakes, requests)
  {
    "handshakes_per_s" => (handshakes / total[:handshakes][0]).round(1),
    "requests_per_s" => (requests / total[:requests][0]).round(1),
    "handshakes_per_cpu_s" => (handshakes / total[:handshakes][1]).round(1),
    "requests_per_cpu_s" => (requests / total[:requests][1]).round(1)
  }
end

def main
  options = { requests: 1000, handshakes: 200, rounds: 10, out: nil }
  OptionParser.new do |o|
    o.on("--requests N", Integer, "requests per setup over kept-alive connections")
    o.on("--handshakes N", Integer, "new connections per setup")
    o.on("--rounds N", Integer, "batches per setup, alternating plain and sdk")
    o.on("--out FILE", "also write the JSON here")
  end.parse!(into: options)
  rounds = options[:rounds]
  per_handshakes = [options[:handshakes] / rounds, 1].max
  per_requests = [options[:requests] / rounds, 1].max

  Dir.mktmpdir("secinfra-bench-mtls-") do |dir|
    write_certificates(dir)
    setups = {
      "plain" => [method(:plain_server), method(:plain_client), plain_files(dir)],
      "sdk" => [method(:sdk_server), method(:sdk_client), static_source(dir, "client")]
    }
    servers = setups.transform_values { |(start_server, _, _)| start_server.call(dir) }
    total = setups.keys.to_h { |name| [name, { handshakes: [0.0, 0.0], requests: [0.0, 0.0] }] }
    begin
      setups.each { |name, (_, make_client, files)| batch(-> { make_client.call(files, servers[name][0]) }, 2, 10) } # warm
      rounds.times do |i|
        order = i.even? ? setups.keys : setups.keys.reverse # ABBA: both see the same drift
        order.each do |name|
          _, make_client, files = setups[name]
          times = batch(-> { make_client.call(files, servers[name][0]) }, per_handshakes, per_requests)
          times.each { |kind, (wall, cpu)| total[name][kind] = [total[name][kind][0] + wall, total[name][kind][1] + cpu] }
        end
      end
    ensure
      servers.each_value { |(_, stop)| stop.call }
    end
    results = total.transform_values { |t| rates(t, per_handshakes * rounds, per_requests * rounds) }
    report = {
      "benchmark" => "sdk_ruby_mtls",
      "ruby" => RUBY_VERSION,
      "openssl" => OpenSSL::OPENSSL_LIBRARY_VERSION,
      "handshakes" => per_handshakes * rounds,
      "requests" => per_requests * rounds,
      "rounds" => rounds,
      "results" => results,
      "ratio" => results["sdk"].to_h { |k, v| [k, (v / results["plain"][k]).round(3)] },
      "target_ratio" => 0.9
    }
    text = JSON.pretty_generate(report)
    puts text
    File.write(options[:out], "#{text}\n") if options[:out]
  end
end

main
