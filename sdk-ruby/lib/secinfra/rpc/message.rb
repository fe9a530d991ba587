# frozen_string_literal: true

require "json"
require_relative "wire"
require_relative "canonical_json"

module Secinfra
  module RPC
    # One field of a generated message: how it travels as JSON.
    #
    # +kind+ is one of :int32, :uint32, :int64, :uint64, :double, :float,
    # :bool, :string, :bytes, :enum, :message, :timestamp, :struct; +type+
    # names the enum module or message class; +map_key+ is the kind of a
    # map's keys; +presence+ means nil is "absent" (proto3 optional, oneof
    # member, message).
    class Field
      INT_RANGES = {
        int32: (-(2**31)..(2**31) - 1),
        uint32: (0..(2**32) - 1),
        int64: (-(2**63)..(2**63) - 1),
        uint64: (0..(2**64) - 1)
      }.freeze
      SENSITIVE_NAMES = %w[value join_token jwt oidc_id_token token secret private_key key_pem].freeze

      attr_reader :attr, :json, :kind, :map_key, :oneof

      # @api private
      def initialize(attr, json, kind, type: nil, repeated: false, map_key: nil, presence: false, oneof: nil)
        @attr = attr
        @json = json
        @kind = kind
        @type_name = type
        @repeated = repeated
        @map_key = map_key
        @presence = presence
        @oneof = oneof
        @json_key = "#{CanonicalJson.write_string(+"", json)}:".freeze
        freeze
      end

      # The field's name as a canonical JSON member name, colon included.
      attr_reader :json_key

      # Whether {Message#to_h} leaves the field out: unset with presence.
      def omitted?(value) = value.nil? && @presence && @map_key.nil? && !@repeated

      # The field's JSON value in {Message#to_h}, for the attribute's +value+
      # (a map, a list, or one value; nil: the zero value).
      def wire_value(value)
        if map?
          value.to_h.each_with_object({}) { |(k, v), h| h[Wire.encode_map_key(k, @map_key)] = encode_value(v) }
        elsif @repeated
          Array(value).map { |v| encode_value(v) }
        elsif value.nil?
          encode_value(zero)
        else
          encode_value(value)
        end
      end

      def repeated? = @repeated
      def map? = !@map_key.nil?
      def presence? = @presence

      # Whether +inspect+ must not show the value (secret values, tokens).
      def sensitive? = @kind == :bytes || SENSITIVE_NAMES.include?(@json)

      # The enum module or message class.
      def type
        Object.const_get(@type_name)
      end

      # JSON value of +value+ (one element; not the list or map).
      def encode_value(value, kind = @kind)
        case kind
        when :int64, :uint64 then Integer(value).to_s
        when :int32, :uint32 then Integer(value)
        when :double, :float then Wire.encode_float(value)
        when :bool then value ? true : false
        when :string then value.to_s
        when :bytes then Base64.strict_encode64(value.to_s)
        when :enum then value.to_s
        when :timestamp then Wire.encode_timestamp(value)
        when :struct then value.to_h
        when :message then value.to_h
        else raise ArgumentError, "unknown kind #{kind}"
        end
      end

      # Ruby value of JSON +value+ (one element).
      def decode_value(value, path, strict, kind = @kind)
        case kind
        when :int32, :uint32, :int64, :uint64 then Wire.decode_integer(value, path, INT_RANGES.fetch(kind))
        when :double, :float then Wire.decode_float(value, path)
        when :bool then Wire.decode_bool(value, path)
        when :string
          raise DecodeError.new(path, "expected a string, got #{Wire.kind_of_json(value)}") unless value.is_a?(String)

          value
        when :bytes then Wire.decode_bytes(value, path)
        when :enum then Wire.decode_enum(type, value, path, strict)
        when :timestamp then Wire.decode_timestamp(value, path)
        when :struct
          raise DecodeError.new(path, "expected an object, got #{Wire.kind_of_json(value)}") unless value.is_a?(Hash)

          value
        when :message then type.from_h(value, strict: strict, path: path)
        else raise ArgumentError, "unknown kind #{kind}"
        end
      end

      # The zero value of a field without presence.
      def zero
        return [] if @repeated && !map?
        return {} if map?
        return nil if @presence

        case @kind
        when :int32, :uint32, :int64, :uint64 then 0
        when :double, :float then 0.0
        when :bool then false
        when :string then ""
        when :bytes then "".b
        when :enum then type::VALUES.first
        end
      end
    end

    # Base class of every generated message: wire JSON in and out, equality,
    # and an +inspect+ that never shows secret values.
    class Message
      # The message's wire JSON form (a Hash with the proto field names as
      # string keys), as sent to the server. Fields with presence that are
      # unset are left out; every other field is included.
      #
      # @return [Hash{String => Object}]
      def to_h
        out = {}
        self.class::FIELDS.each do |f|
          value = public_send(f.attr)
          out[f.json] = f.wire_value(value) unless f.omitted?(value)
        end
        out
      end

      # Appends the canonical JSON (spec 7.3.2) of {#to_h} to +out+ without
      # making the Hash: a cacheable call's key is made of it on every call,
      # cache hits included. Members in name order, each as {#to_h} has it.
      #
      # @param out [String] an unfrozen buffer
      # @return [String] +out+
      def write_canonical_json(out)
        out << "{"
        first = true
        self.class.canonical_plan.each do |attr, json_key, field, optional, form|
          value = public_send(attr)
          next if optional && value.nil?

          out << "," unless first
          first = false
          out << json_key
          if form == :string && value.is_a?(String)
            CanonicalJson.write_string(out, value)
          elsif form == :message && value.is_a?(Message)
            value.write_canonical_json(out)
          elsif form == :list && value.is_a?(Array) && value.empty?
            out << "[]"
          else
            CanonicalJson.write(out, field.wire_value(value))
          end
        end
        out << "}"
      end

      # {FIELDS} in the order of their JSON names (canonical JSON's order),
      # each as [attr, json_key, field, optional, form]: +optional+ when
      # unset leaves it out of {#to_h}; form +:string+ (a string or enum) or
      # +:message+ for one value of that kind and +:list+ for a repeated
      # field (an empty one written directly), +:other+ for the rest.
      #
      # @api private
      def self.canonical_plan
        @canonical_plan ||= self::FIELDS.sort_by(&:json).map do |f|
          form = if f.map? then :other
                 elsif f.repeated? then :list
                 elsif f.kind == :string || f.kind == :enum then :string # both as value.to_s
                 elsif f.kind == :message then :message
                 else :other
                 end
          [f.attr, f.json_key, f, f.omitted?(nil), form].freeze
        end.freeze
      end

      # The fields as keyword arguments (for the generated client methods).
      #
      # @return [Hash{Symbol => Object}]
      def to_kwargs
        self.class::FIELDS.to_h { |f| [f.attr, public_send(f.attr)] }
      end

      # The wire JSON text.
      #
      # @return [String]
      def to_json(*args)
        to_h.to_json(*args)
      end

      # Reads a message from its wire JSON form.
      #
      # @param data [Hash, nil] a decoded JSON object (nil reads as empty)
      # @param strict [Boolean] reject unknown fields and enum values (for
      #   input from people); responses are read leniently (spec 1.6.3)
      # @return [Message]
      # @raise [DecodeError] when +data+ does not match the message
      def self.from_h(data, strict: false, path: "")
        data = {} if data.nil?
        raise DecodeError.new(path, "expected an object, got #{Wire.kind_of_json(data)}") unless data.is_a?(Hash)

        fields = self::FIELDS
        if strict
          known = fields.map(&:json)
          unknown = data.keys.map(&:to_s) - known
          raise DecodeError.new(path, "unknown field #{unknown.first.inspect}") unless unknown.empty?
        end
        kwargs = {}
        seen_oneofs = {}
        fields.each do |f|
          key = data.key?(f.json) ? f.json : f.json.to_sym
          next unless data.key?(key)

          raw = data[key]
          next if raw.nil?

          sub = path.empty? ? f.json : "#{path}.#{f.json}"
          if f.oneof
            other = seen_oneofs[f.oneof]
            raise DecodeError.new(sub, "oneof #{f.oneof} already has #{other}") if other

            seen_oneofs[f.oneof] = f.json
          end
          kwargs[f.attr] = decode_field(f, raw, sub, strict)
        end
        new(**kwargs)
      end

      # Reads a message from wire JSON text.
      def self.from_json(text, strict: false)
        from_h(JSON.parse(text), strict: strict)
      rescue JSON::ParserError => e
        raise DecodeError.new("", "not JSON: #{e.message}")
      end

      # @api private
      def self.decode_field(f, raw, path, strict)
        if f.map?
          raise DecodeError.new(path, "expected an object, got #{Wire.kind_of_json(raw)}") unless raw.is_a?(Hash)

          raw.each_with_object({}) do |(k, v), h|
            h[Wire.decode_map_key(k.to_s, f.map_key, "#{path}[#{k}]")] = f.decode_value(v, "#{path}[#{k}]", strict)
          end
        elsif f.repeated?
          raise DecodeError.new(path, "expected a list, got #{Wire.kind_of_json(raw)}") unless raw.is_a?(Array)

          raw.each_with_index.map { |v, i| f.decode_value(v, "#{path}[#{i}]", strict) }
        else
          f.decode_value(raw, path, strict)
        end
      end

      # Equal when of the same class with equal fields.
      def ==(other)
        other.class == self.class && other.to_kwargs == to_kwargs
      end
      alias eql? ==

      def hash
        [self.class, to_kwargs].hash
      end

      # Shows every field except secret values (bytes and token fields show
      # their size only).
      def inspect
        parts = self.class::FIELDS.map do |f|
          value = public_send(f.attr)
          shown = if f.sensitive? && !value.nil?
                    value.respond_to?(:bytesize) ? "[REDACTED #{value.bytesize} bytes]" : "[REDACTED]"
                  else
                    value.inspect
                  end
          "#{f.attr}=#{shown}"
        end
        "#<#{self.class.name} #{parts.join(", ")}>"
      end
      alias to_s inspect

      private

      def check_oneofs!
        groups = Hash.new { |h, k| h[k] = [] }
        self.class::FIELDS.each do |f|
          groups[f.oneof] << f.attr if f.oneof && !public_send(f.attr).nil?
        end
        groups.each do |name, set|
          raise ArgumentError, "secinfra: oneof #{name}: set at most one of #{set.join(", ")}" if set.size > 1
        end
      end
    end
  end
end
