# frozen_string_literal: true

require "json"
require "logger"
require "net/http"
require "openssl"
require "socket"
require "timeout"
require "uri"

# The mtls ops of the conformance client (feature mtls, spec 13): mtls_serve
# serves HTTPS with Secinfra::MTLS.server and answers every request with the
# caller's SPIFFE ID as Secinfra::MTLS.peer_id reads it; mtls_call makes one
# GET over a new connection with Secinfra::MTLS.http. Both are built on the
# client's rotating identity source (client.source), as an application builds
# them (docs/mtls/ruby.md). Only the SDK's public API is used.
module MtlsOps
  # Seconds an mtls_call may take when the runner gives no timeout_seconds.
  DEFAULT_CALL_TIMEOUT = 10.0
  # Seconds an idle served connection stays open (the protocol asks for 30 at least).
  IDLE_SECONDS = 60.0
  # Bytes of a request head the server reads at most.
  MAX_HEAD_BYTES = 16 * 1024
  # The fields each authorizer kind takes.
  KIND_FIELDS = {
    "id" => %w[id], "one_of" => %w[ids], "member_of" => %w[trust_domain],
    "path_prefix" => %w[prefix trust_domain]
  }.freeze
  # The SDK's refusal rules (Secinfra::MTLS::PeerRefused::RULES) as the protocol names them.
  RULE_CODES = {
    untrusted: "chain", expired: "validity", not_svid: "x509_svid", ca_leaf: "x509_svid",
    trust_domain: "trust_domain", unauthorized: "authorizer", unverified: "chain"
  }.freeze

  # One mtls_serve: the SDK's listener and the thread that runs it.
  Serving = Struct.new(:server, :thread)

  module_function

  # The SDK authorizer an MtlsAuthorizer names.
  #
  # @raise [ArgumentError] for an unknown kind or fields the kind does not take
  def authorizer(spec)
    raise ArgumentError, "give an authorizer" if spec.nil?

    wanted = KIND_FIELDS[spec.kind]
    raise ArgumentError, "unknown authorizer kind #{spec.kind.inspect} (known: #{KIND_FIELDS.keys.join(", ")})" unless wanted

    given = { "id" => !spec.id.nil?, "ids" => !spec.ids.empty?, "prefix" => !spec.prefix.nil?,
              "trust_domain" => !spec.trust_domain.nil? }.select { |_, v| v }.keys.sort
    raise ArgumentError, "authorizer kind #{spec.kind.inspect} takes #{wanted}, got #{given}" unless given == wanted

    case spec.kind
    when "id" then Secinfra::MTLS::Authorizer.id(spec.id)
    when "one_of" then Secinfra::MTLS::Authorizer.one_of(*spec.ids)
    when "member_of" then Secinfra::MTLS::Authorizer.member_of(spec.trust_domain)
    else
      trust_domain = spec.trust_domain.delete_prefix("spiffe://")
      Secinfra::MTLS::Authorizer.path_prefix("spiffe://#{trust_domain}/#{spec.prefix.delete_prefix("/")}")
    end
  end

  # Serves on 127.0.0.1, a port the system picks.
  #
  # @return [Serving]
  def serve(source, authorizer, logger)
    tcp = TCPServer.new("127.0.0.1", 0)
    server = Secinfra::MTLS.server(tcp, source, authorizer: authorizer, logger: logger)
    thread = Thread.new { server.serve { |ssl| answer_requests(ssl) } }
    Serving.new(server, thread)
  end

  # Closes the listener and every connection, and waits for its thread.
  def stop(serving)
    serving.server.close
    serving.thread.join(Secinfra::MTLS::Server::CLOSE_GRACE)
  end

  # Answers every request of a keep-alive connection with the peer's ID, as
  # a handler reads it, until the client closes or stays idle too long.
  def answer_requests(ssl)
    body = JSON.generate({ "peer_spiffe_id" => Secinfra::MTLS.peer_id(ssl) })
    loop do
      head = read_head(ssl)
      break if head.nil?

      length = head[/^content-length:\s*(\d+)\r?$/i, 1].to_i
      ssl.read(length) if length.positive?
      ssl.write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: #{body.bytesize}\r\n" \
                "Connection: keep-alive\r\n\r\n#{body}")
      break if head.match?(/^connection:\s*close\r?$/i)
    end
  end

  # A request's head (request line and headers), or nil once the client is gone.
  def read_head(ssl)
    head = +""
    until head.end_with?("\r\n\r\n")
      return nil unless ssl.pending.positive? || ssl.to_io.wait_readable(IDLE_SECONDS)

      chunk = ssl.readpartial(4096)
      head << chunk
      return nil if head.bytesize > MAX_HEAD_BYTES
    end
    head
  rescue EOFError, IOError, SystemCallError, OpenSSL::SSL::SSLError
    nil
  end

  # One GET over a new connection (closed afterwards).
  #
  # @return [Array(Hash, nil), Array(nil, Hash)] the result's fields, or a failure's
  def call(source, url, authorizer, timeout)
    target = URI.parse(url)
    unless target.is_a?(URI::HTTPS) && target.port
      raise ArgumentError, "url must be https://127.0.0.1:<port>/..., got #{url.inspect}"
    end

    http = Secinfra::MTLS.http(target.host, target.port, source, authorizer: authorizer)
    http.open_timeout = http.read_timeout = http.write_timeout = http.ssl_timeout = timeout
    http.max_retries = 0
    response = Timeout.timeout(timeout) do
      http.start { |h| h.request(Net::HTTP::Get.new(target.request_uri, "Connection" => "close")) }
    end
    # The certificate the connection presented: Secinfra::MTLS.http loads
    # the source's current snapshot when it connects.
    [{ status: response.code.to_i, body: response.body.to_s, peer_spiffe_id: http.peer_id.to_s,
       presented_serial: http.cert.serial.to_i.to_s(16) }, nil]
  rescue Secinfra::MTLS::PeerRefused => e
    [nil, { type: "PeerRefused", code: RULE_CODES.fetch(e.rule, e.rule.to_s), message: e.message }]
  rescue Timeout::Error, Net::OpenTimeout, Net::ReadTimeout, Net::WriteTimeout, Errno::ECONNREFUSED,
         Errno::EHOSTUNREACH, SocketError => e
    [nil, { type: "TransportError", message: "#{e.class}: #{e.message}" }]
  rescue OpenSSL::SSL::SSLError, EOFError, IOError, SystemCallError, Net::HTTPBadResponse => e
    # An alert from the server, or the connection closed before an answer.
    [nil, { type: "HandshakeFailed", message: "#{e.class}: #{e.message}" }]
  end
end
