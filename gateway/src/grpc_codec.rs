//! The protobuf codec of every gRPC route: tonic's prost codec, except that a request message that does not
//! decode is the caller's error. tonic answers it INTERNAL (gRPC's rule for its own parse failures), which SDKs
//! treat as a server fault and retry; daprd's callers expect INVALID_ARGUMENT with `ERR_MALFORMED_REQUEST`.
//! Framing faults tonic finds before the codec (an unknown compression flag, a truncated frame) keep the codes
//! the gRPC specification gives them.

use tonic::codec::{BufferSettings, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::{ProstCodec, ProstDecoder};

use crate::DaprError;

/// Encodes `Resp` and decodes `Req` as [`ProstCodec`] does, answering undecodable requests INVALID_ARGUMENT.
pub(crate) struct Codec<Resp, Req>(ProstCodec<Resp, Req>);

impl<Resp, Req> Default for Codec<Resp, Req> {
    fn default() -> Self {
        Codec(ProstCodec::default())
    }
}

impl<Resp, Req> tonic::codec::Codec for Codec<Resp, Req>
where
    Resp: prost::Message + Send + 'static,
    Req: prost::Message + Default + Send + 'static,
{
    type Encode = Resp;
    type Decode = Req;
    type Encoder = <ProstCodec<Resp, Req> as tonic::codec::Codec>::Encoder;
    type Decoder = RequestDecoder<Req>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder(self.0.decoder())
    }
}

/// [`ProstDecoder`] with its failures answered as a malformed request.
pub(crate) struct RequestDecoder<Req>(ProstDecoder<Req>);

impl<Req: prost::Message + Default> Decoder for RequestDecoder<Req> {
    type Item = Req;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Req>, Status> {
        self.0.decode(buf).map_err(|status| {
            DaprError::malformed(format!("the request message is not valid protobuf: {}", status.message())).to_status()
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
