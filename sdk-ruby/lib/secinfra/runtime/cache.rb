# frozen_string_literal: true

require "json"

module Secinfra
  module Runtime
    # What a response's Cache-Control allows (spec 7.4).
    CacheControl = Struct.new(:max_age, :stale_if_error, :no_store, :no_cache, keyword_init: true) do
      # Parses a Cache-Control header value (nil = absent).
      #
      # @param value [String, nil]
      # @return [CacheControl]
      def self.parse(value)
        seen = {}
        value.to_s.split(",").each do |part|
          name, arg = part.split("=", 2)
          name = name.to_s.strip.downcase
          next if name.empty? || seen.key?(name)

          arg = arg&.strip
          arg = arg[1..-2] if arg && arg.length >= 2 && arg.start_with?('"') && arg.end_with?('"')
          seen[name] = arg
        end
        new(max_age: seen.key?("no-cache") ? 0 : delta(seen["max-age"]),
            stale_if_error: delta(seen["stale-if-error"]),
            no_store: seen.key?("no-store"), no_cache: seen.key?("no-cache"))
      end

      # Delta-seconds: digits only, capped; anything else (or absent) is 0.
      def self.delta(text)
        return 0 unless text&.match?(/\A[0-9]+\z/)

        [text.to_i, CacheControl::MAX_DELTA].min
      end
    end
    # Largest delta-seconds (RFC 9111 section 1.2.2).
    CacheControl::MAX_DELTA = 2_147_483_648

    # One cached answer. +value+ is the decoded response (never persisted).
    class CacheEntry
      attr_reader :value, :etag, :max_age, :stale_if_error, :received, :resource, :resource_key, :revision

      def initialize(value:, etag:, control:, received:, resource:, resource_key:, revision:)
        @value = value
        @etag = etag
        @max_age = control.max_age
        @stale_if_error = control.stale_if_error
        @received = received
        @resource = resource
        @resource_key = resource_key
        @revision = revision
      end

      # Restarts the entry's age from a 304 (spec 7.5.3).
      def refresh(control, etag, received)
        @max_age = control.max_age
        @stale_if_error = control.stale_if_error
        @etag = etag if etag
        @received = received
      end

      def inspect
        "#<Secinfra::Runtime::CacheEntry resource=#{@resource} max_age=#{@max_age} etag=#{@etag.inspect} value=[REDACTED]>"
      end
      alias to_s inspect
    end

    # A cache lookup: the entry and its state at lookup time.
    CacheHit = Struct.new(:entry, :fresh, :usable_on_error) do
      def etag = entry.etag
    end

    # The per-client in-memory LRU response cache (spec 7.2-7.10). Thread-safe.
    class ResponseCache
      # Entries held at most (spec 7.2.2).
      MAX_ENTRIES = 1024

      attr_reader :max_entries

      # The cache key of +method_name+ called with +request+: the canonical
      # JSON of the whole call (spec 7.3), never a joined string.
      #
      # @param method_name [String] +secinfra.v1.AuthzService/Check+
      # @param request [RPC::Message, Hash] the request, or its wire JSON form
      #   (a message gives the key of its {RPC::Message#to_h})
      # @return [String]
      def self.key(method_name, request)
        # The canonical JSON of {"method" => method_name, "request" => request}.
        out = +'{"method":'
        RPC::CanonicalJson.write_string(out, method_name)
        out << ',"request":'
        if request.is_a?(RPC::Message)
          request.write_canonical_json(out)
        else
          RPC::CanonicalJson.write(out, request)
        end
        out << "}"
      end

      # @param max_entries [Integer] at least 1
      # @param clock [SystemClock]
      def initialize(max_entries: MAX_ENTRIES, clock: SystemClock.new)
        unless max_entries.is_a?(Integer) && max_entries >= 1
          raise ArgumentError, "secinfra: cache: cache_size must be an integer >= 1, got #{max_entries.inspect}"
        end

        @max_entries = max_entries
        @clock = clock
        @entries = {} # insertion order = LRU order (oldest first)
        @generations = Hash.new(0)
        @marks = {}
        @lock = Mutex.new
      end

      # @return [Integer] entries held
      def size = @lock.synchronize { @entries.size }

      # The invalidation generation of +resource+ (spec 7.9.2).
      def generation(resource) = @lock.synchronize { @generations[resource] }

      # The entry for +key+, or nil; drops useless and outdated entries.
      #
      # @return [CacheHit, nil]
      def lookup(key)
        @lock.synchronize do
          entry = @entries[key]
          return nil if entry.nil?

          mark = @marks[entry.resource]
          if mark && !Revision.at_least?(entry.revision, mark)
            @entries.delete(key)
            return nil
          end
          age = @clock.monotonic - entry.received
          fresh = age < entry.max_age
          usable = age < entry.max_age + entry.stale_if_error
          if !fresh && !usable && entry.etag.nil?
            @entries.delete(key)
            return nil
          end
          @entries.delete(key)
          @entries[key] = entry
          CacheHit.new(entry, fresh, usable)
        end
      end

      # Stores a 2xx answer as spec 7.4 and 7.9.2 / 7.10.4 allow.
      #
      # @param headers [Hash{String => String}] lower-case names
      # @param generation [Integer] {#generation} when the request was sent
      def store(key, value, headers, resource:, resource_key:, revision:, generation:)
        control = CacheControl.parse(headers["cache-control"])
        etag = headers["etag"]
        @lock.synchronize do
          if control.no_store
            @entries.delete(key)
            return
          end
          return if @generations[resource] != generation

          mark = @marks[resource]
          return if mark && !Revision.at_least?(revision, mark)
          return if control.max_age.zero? && control.stale_if_error.zero? && etag.nil?

          received = @clock.monotonic - age_of(headers)
          @entries.delete(key)
          @entries.shift while @entries.size >= @max_entries
          @entries[key] = CacheEntry.new(value: value, etag: etag, control: control, received: received,
                                         resource: resource, resource_key: resource_key, revision: revision)
        end
      end

      # Refreshes an entry after a 304 (spec 7.5.3).
      def refresh(key, headers)
        control = CacheControl.parse(headers["cache-control"])
        etag = headers["etag"]
        @lock.synchronize do
          entry = @entries[key]
          return if entry.nil?

          if control.no_store
            @entries.delete(key)
            return
          end
          return if etag && entry.etag && etag != entry.etag

          entry.refresh(headers.key?("cache-control") ? control : CacheControl.new(max_age: entry.max_age, stale_if_error: entry.stale_if_error), etag, @clock.monotonic - age_of(headers))
        end
      end

      # Drops the family's entries for +resource_key+ and those without a key (spec 7.9.1).
      def invalidate(resource, resource_key)
        @lock.synchronize do
          @generations[resource] += 1
          @entries.delete_if { |_, e| e.resource == resource && (e.resource_key == resource_key || e.resource_key.empty?) }
        end
      end

      # Drops every entry of the family.
      def invalidate_family(resource)
        @lock.synchronize do
          @generations[resource] += 1
          @entries.delete_if { |_, e| e.resource == resource }
        end
      end

      # Remembers a write's revision token as the family's write mark (spec 7.10.2).
      def record_write_revision(resource, token)
        @lock.synchronize do
          current = @marks[resource]
          if current.nil? || Revision.parse(token).nil? || Revision.parse(current).nil? ||
             Revision.compare(token, current).positive?
            @marks[resource] = token
          end
        end
      end

      # Drops every entry (write marks stay, spec 7.10.5).
      def clear
        @lock.synchronize do
          @generations.each_key { |k| @generations[k] += 1 }
          @entries.clear
        end
      end

      def inspect = "#<Secinfra::Runtime::ResponseCache entries=#{size}/#{@max_entries}>"
      alias to_s inspect

      private

      def age_of(headers)
        age = headers["age"]
        age&.strip&.match?(/\A[0-9]+\z/) ? [age.to_i, CacheControl::MAX_DELTA].min : 0
      end
    end

    # Revision tokens: ASCII digits compared as non-negative integers (spec 7.10.1).
    module Revision
      module_function

      # Digits without leading zeros, or nil when +token+ does not parse.
      def parse(token)
        return nil unless token.is_a?(String) && token.match?(/\A[0-9]+\z/)

        stripped = token.sub(/\A0+/, "")
        stripped.empty? ? "0" : stripped
      end

      # -1, 0 or 1.
      def compare(left, right)
        a = parse(left)
        b = parse(right)
        return a.length <=> b.length unless a.length == b.length

        a <=> b
      end

      # Whether +revision+ parses and is at least +mark+ (an unparsable mark: never).
      def at_least?(revision, mark)
        return false if parse(revision).nil? || parse(mark).nil?

        compare(revision, mark) >= 0
      end
    end
  end
end
