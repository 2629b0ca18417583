//! Thumbnails: the only form in which natter shows an uploaded image inline. Decoding and
//! re-encoding means what a browser renders is pixels natter wrote, never the bytes a client sent
//! (no smuggled markup, no EXIF with a location), at a size a chat can load. Decoding is where an
//! upload can hurt the server, so the size is read from the header and refused before any pixel
//! is decoded, and the decoder runs with allocation limits in case the header lies.

use std::path::Path;

use ::image::codecs::jpeg::JpegEncoder;
use ::image::codecs::png::PngEncoder;
use ::image::imageops::FilterType;
use ::image::metadata::Orientation;
use ::image::{DynamicImage, ImageDecoder, ImageReader, Limits};

/// The longest side of a thumbnail, in pixels.
pub const THUMB_SIDE: u32 = 800;

/// The most pixels natter decodes (width × height): beyond it an upload is a decompression bomb,
/// or not worth showing inline.
pub const MAX_PIXELS: u64 = 40_000_000;

/// The longest side decoded: a 20 000 × 2 000 panorama is fine, a 1 × 40 000 000 strip is not
/// an image anyone looks at (and within `MAX_PIXELS`).
const MAX_SIDE: u32 = 20_000;

/// The most a decoder may allocate: 40 M pixels of 16-bit RGBA (320 MiB) fit, a lying header
/// cannot take more.
const MAX_ALLOC: u64 = 512 * 1024 * 1024;

/// JPEG quality of thumbnails: a common web setting, where artefacts are hard to see at
/// thumbnail size and the bytes stay small for a chat that shows many at once.
const JPEG_QUALITY: u8 = 82;

/// A re-encoded, downscaled image ready to store and serve inline.
pub struct Thumbnail {
    /// The encoded thumbnail (JPEG or PNG), with no metadata from the original.
    pub bytes: Vec<u8>,
    /// The Content-Type of `bytes`: `image/jpeg`, or `image/png` when there is transparency to keep.
    pub mime: &'static str,
    /// The thumbnail's width, for the `<img>` so the page does not jump while it loads.
    pub width: u32,
    /// The thumbnail's height, for the same reason.
    pub height: u32,
    /// The original's width as shown (after EXIF orientation), to tell people what they download.
    pub full_width: u32,
    /// The original's height as shown (after EXIF orientation).
    pub full_height: u32,
}

/// Why an upload gets no thumbnail (it is still offered as a download).
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Larger than `MAX_PIXELS` or `MAX_SIDE`, judged from the header alone.
    #[error("the image is {width}×{height} pixels, too large to show inline")]
    TooManyPixels {
        /// The width the header claims.
        width: u32,
        /// The height the header claims.
        height: u32,
    },
    /// Not an image natter decodes (unknown, truncated or corrupt), or the file could not be read;
    /// the text is for logs, not for people.
    #[error("the image cannot be read: {0}")]
    Unreadable(String),
}

impl From<::image::ImageError> for ImageError {
    fn from(error: ::image::ImageError) -> Self {
        Self::Unreadable(error.to_string())
    }
}

impl From<std::io::Error> for ImageError {
    fn from(error: std::io::Error) -> Self {
        Self::Unreadable(error.to_string())
    }
}

/// A thumbnail of the image at `path` fitting in `max_side` × `max_side` (usually `THUMB_SIDE`),
/// upright as its EXIF orientation says, never upscaled. The format is judged from the content,
/// whatever the file is called; an animated GIF gives its first frame.
///
/// Blocking (decodes): call it from `tokio::task::spawn_blocking`.
pub fn thumbnail(path: &Path, max_side: u32) -> Result<Thumbnail, ImageError> {
    let mut decoder = open(path)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_PIXELS || width.max(height) > MAX_SIDE {
        return Err(ImageError::TooManyPixels { width, height });
    }
    decoder.set_limits(limits(Some(MAX_SIDE)))?;
    let orientation = decoder.orientation()?;
    let image = DynamicImage::from_decoder(decoder)?;
    // Shrink first, then turn: the same pixels, and turning a 12 MP image costs ~0.2 s.
    let mut small = shrink(image, max_side.max(1));
    small.apply_orientation(orientation);
    let (full_width, full_height) = oriented(width, height, orientation);
    encode(&small, full_width, full_height)
}

/// A decoder for the file that has read its header only, so its dimensions are known and no pixel
/// has been decoded yet.
fn open(path: &Path) -> Result<impl ImageDecoder, ImageError> {
    let mut reader = ImageReader::open(path)?;
    // `open` guesses a format from the extension; forget it so only the content decides.
    reader.clear_format();
    let mut reader = reader.with_guessed_format()?;
    // No side limit yet: the PNG decoder applies limits while it reads the header, and would
    // call a too-large image unreadable before `thumbnail` can say what is wrong with it.
    reader.limits(limits(None));
    Ok(reader.into_decoder()?)
}

/// Decoding limits with an optional strict cap on each side.
fn limits(max_side: Option<u32>) -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = max_side;
    limits.max_image_height = max_side;
    limits.max_alloc = Some(MAX_ALLOC);
    limits
}

/// `image` scaled down to fit in `max_side` × `max_side`, keeping its aspect ratio; an image
/// already that small is kept as is (upscaling only blurs it and costs bytes).
fn shrink(image: DynamicImage, max_side: u32) -> DynamicImage {
    if image.width() <= max_side && image.height() <= max_side {
        return image;
    }
    // Triangle (bilinear, widened to the scale factor so every source pixel counts). Measured on
    // a 12 MP image in release: ~0.2 s, 0.75/255 mean difference from Lanczos3 (~0.35 s);
    // `DynamicImage::thumbnail` takes ~0.1 s but is 3.3/255 off, and aliases stripes when the
    // scale is near 1 (1000 → 800: 25/255 off, Triangle 11/255).
    image.resize(max_side, max_side, FilterType::Triangle)
}

/// The dimensions of a `width` × `height` image once `orientation` is applied.
fn oriented(width: u32, height: u32, orientation: Orientation) -> (u32, u32) {
    match orientation {
        Orientation::Rotate90
        | Orientation::Rotate270
        | Orientation::Rotate90FlipH
        | Orientation::Rotate270FlipH => (height, width),
        _ => (width, height),
    }
}

/// `image` encoded as JPEG (small, fine for photos) or, when it has an alpha channel, as PNG
/// (JPEG would turn transparency black). Encoding from pixels writes no metadata at all.
fn encode(
    image: &DynamicImage,
    full_width: u32,
    full_height: u32,
) -> Result<Thumbnail, ImageError> {
    let mut bytes = Vec::new();
    let mime = if image.color().has_alpha() {
        image
            .to_rgba8()
            .write_with_encoder(PngEncoder::new(&mut bytes))?;
        "image/png"
    } else {
        let encoder = JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY);
        image.to_rgb8().write_with_encoder(encoder)?;
        "image/jpeg"
    };
    Ok(Thumbnail {
        bytes,
        mime,
        width: image.width(),
        height: image.height(),
        full_width,
        full_height,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::path::PathBuf;
    use std::time::Instant;

    use ::image::codecs::gif::GifEncoder;
    use ::image::{Delay, Frame, GenericImageView, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

    use super::*;
    use crate::files::sniff::sniff;

    /// A file in a fresh directory (kept alive by the returned guard).
    fn file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    fn encoded(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut bytes = Cursor::new(Vec::new());
        image.write_to(&mut bytes, format).unwrap();
        bytes.into_inner()
    }

    /// An opaque picture with some structure, so encoders have something to encode.
    fn gradient(width: u32, height: u32) -> DynamicImage {
        let image = RgbImage::from_fn(width, height, |x, y| {
            Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        DynamicImage::ImageRgb8(image)
    }

    /// A picture whose left half is transparent.
    fn half_transparent(width: u32, height: u32) -> DynamicImage {
        let image = RgbaImage::from_fn(width, height, |x, _| {
            Rgba([200, 30, 30, if x < width / 2 { 0 } else { 255 }])
        });
        DynamicImage::ImageRgba8(image)
    }

    fn thumbnail_of(name: &str, bytes: &[u8]) -> Result<Thumbnail, ImageError> {
        let (_dir, path) = file(name, bytes);
        thumbnail(&path, THUMB_SIDE)
    }

    fn decoded(thumb: &Thumbnail) -> DynamicImage {
        ::image::load_from_memory(&thumb.bytes).unwrap()
    }

    /// A thumbnail that says what it is, in its mime, its bytes and its dimensions.
    fn assert_consistent(thumb: &Thumbnail) {
        assert_eq!(sniff(&thumb.bytes).mime, thumb.mime);
        assert_eq!(decoded(thumb).dimensions(), (thumb.width, thumb.height));
    }

    #[test]
    fn each_inline_format_gets_a_thumbnail() {
        let opaque = gradient(120, 80);
        let cases = [
            ("a.png", encoded(&opaque, ImageFormat::Png), "image/jpeg"),
            ("a.jpg", encoded(&opaque, ImageFormat::Jpeg), "image/jpeg"),
            // The GIF decoder gives RGBA (GIF has a transparent colour), so PNG.
            ("a.gif", encoded(&opaque, ImageFormat::Gif), "image/png"),
            // image 0.25 encodes lossless WebP only; decoding is what is under test.
            ("a.webp", encoded(&opaque, ImageFormat::WebP), "image/jpeg"),
        ];
        for (name, bytes, mime) in cases {
            let thumb = thumbnail_of(name, &bytes).unwrap();
            assert_eq!(thumb.mime, mime, "{name}");
            assert_eq!((thumb.width, thumb.height), (120, 80), "{name}");
            assert_eq!((thumb.full_width, thumb.full_height), (120, 80), "{name}");
            assert_consistent(&thumb);
        }
    }

    #[test]
    fn a_large_image_is_scaled_to_fit_keeping_its_aspect_ratio() {
        let landscape =
            thumbnail_of("l.jpg", &encoded(&gradient(4000, 3000), ImageFormat::Jpeg)).unwrap();
        assert_eq!((landscape.width, landscape.height), (800, 600));
        assert_eq!((landscape.full_width, landscape.full_height), (4000, 3000));
        assert_consistent(&landscape);

        let portrait =
            thumbnail_of("p.png", &encoded(&gradient(900, 1800), ImageFormat::Png)).unwrap();
        assert_eq!((portrait.width, portrait.height), (400, 800));
        assert_consistent(&portrait);
    }

    #[test]
    fn max_side_is_the_callers_choice() {
        let (_dir, path) = file("a.png", &encoded(&gradient(1000, 500), ImageFormat::Png));
        let thumb = thumbnail(&path, 100).unwrap();
        assert_eq!((thumb.width, thumb.height), (100, 50));
    }

    #[test]
    fn a_small_image_is_not_upscaled() {
        let thumb = thumbnail_of("s.png", &encoded(&gradient(100, 50), ImageFormat::Png)).unwrap();
        assert_eq!((thumb.width, thumb.height), (100, 50));
        assert_eq!((thumb.full_width, thumb.full_height), (100, 50));
    }

    #[test]
    fn transparency_gives_a_png_and_survives() {
        let thumb = thumbnail_of(
            "t.png",
            &encoded(&half_transparent(1600, 100), ImageFormat::Png),
        )
        .unwrap();
        assert_eq!(thumb.mime, "image/png");
        assert_eq!((thumb.width, thumb.height), (800, 50));
        let pixels = decoded(&thumb).to_rgba8();
        assert_eq!(pixels.get_pixel(10, 25)[3], 0);
        assert_eq!(pixels.get_pixel(790, 25)[3], 255);
    }

    #[test]
    fn an_opaque_png_gives_a_jpeg() {
        let thumb = thumbnail_of("o.png", &encoded(&gradient(300, 200), ImageFormat::Png)).unwrap();
        assert_eq!(thumb.mime, "image/jpeg");
        assert_consistent(&thumb);
    }

    #[test]
    fn the_format_comes_from_the_content_not_the_name() {
        let png = encoded(&gradient(64, 32), ImageFormat::Png);
        let jpeg = encoded(&gradient(64, 32), ImageFormat::Jpeg);
        for (name, bytes) in [
            ("x.html", &png),
            ("photo.jpg", &png),
            ("photo.png", &jpeg),
            ("noext", &jpeg),
        ] {
            let thumb = thumbnail_of(name, bytes).unwrap();
            assert_eq!((thumb.width, thumb.height), (64, 32), "{name}");
        }
        // And HTML called `.png` is no image.
        let html = b"<html><script>alert(1)</script></html>";
        assert!(matches!(
            thumbnail_of("x.png", html),
            Err(ImageError::Unreadable(_))
        ));
    }

    #[test]
    fn an_animated_gif_gives_its_first_frame() {
        let frame = |colour: [u8; 4]| {
            Frame::from_parts(
                RgbaImage::from_pixel(40, 30, Rgba(colour)),
                0,
                0,
                Delay::from_numer_denom_ms(100, 1),
            )
        };
        let mut bytes = Vec::new();
        GifEncoder::new(&mut bytes)
            .encode_frames([frame([255, 0, 0, 255]), frame([0, 0, 255, 255])])
            .unwrap();
        let thumb = thumbnail_of("a.gif", &bytes).unwrap();
        assert_eq!((thumb.width, thumb.height), (40, 30));
        assert_eq!(
            decoded(&thumb).to_rgba8().get_pixel(20, 15).0,
            [255, 0, 0, 255]
        );
    }

    /// The standard CRC-32 of PNG chunks (and zlib, gzip), bit by bit: enough for a test.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    fn png_chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        png.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
        let start = png.len();
        png.extend_from_slice(kind);
        png.extend_from_slice(data);
        let crc = crc32(&png[start..]);
        png.extend_from_slice(&crc.to_be_bytes());
    }

    /// A valid PNG header claiming `width` × `height` RGBA pixels, followed by an empty image
    /// (a zlib stream of nothing): all a decompression bomb needs to show before its pixels.
    fn png_claiming(width: u32, height: u32) -> Vec<u8> {
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8 bits, RGBA, deflate, no filter, no interlace
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png_chunk(&mut png, b"IHDR", &ihdr);
        png_chunk(
            &mut png,
            b"IDAT",
            &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
        );
        png_chunk(&mut png, b"IEND", &[]);
        png
    }

    #[test]
    fn the_test_crc_is_the_png_crc() {
        // The IEND chunk's CRC, the same in every PNG.
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
    }

    #[test]
    fn a_header_claiming_too_many_pixels_is_refused_before_decoding() {
        for (width, height) in [
            (30_000, 30_000),
            (8_000, 5_001),
            (20_001, 1),
            (1, 40_000_000),
        ] {
            let started = Instant::now();
            let result = thumbnail_of("bomb.png", &png_claiming(width, height));
            assert!(
                matches!(result, Err(ImageError::TooManyPixels { width: w, height: h }) if (w, h) == (width, height)),
                "{width}×{height}"
            );
            // Decoding (or even zeroing) 3.6 GB would take far longer than this.
            assert!(started.elapsed().as_secs() < 2);
        }
    }

    #[test]
    fn the_pixel_limit_is_inclusive() {
        // 8000 × 5000 is exactly MAX_PIXELS: allowed past the size check, so what fails is the
        // missing data. (This one does allocate, 160 MB, for a moment.)
        let result = thumbnail_of("edge.png", &png_claiming(8_000, 5_000));
        assert!(matches!(result, Err(ImageError::Unreadable(_))));
    }

    #[test]
    fn garbage_and_empty_files_are_unreadable() {
        let noise: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for (name, bytes) in [
            ("empty.png", &b""[..]),
            ("noise.jpg", &noise[..]),
            ("text.gif", b"just text"),
        ] {
            assert!(
                matches!(thumbnail_of(name, bytes), Err(ImageError::Unreadable(_))),
                "{name}"
            );
        }
        // Magic numbers alone are not images.
        for head in [
            &b"\x89PNG\r\n\x1a\n"[..],
            b"\xFF\xD8\xFF",
            b"GIF89a",
            b"RIFF\0\0\0\0WEBPVP8 ",
        ] {
            assert!(
                matches!(thumbnail_of("head", head), Err(ImageError::Unreadable(_))),
                "{head:?}"
            );
        }
    }

    #[test]
    fn a_missing_file_is_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let result = thumbnail(&dir.path().join("gone.png"), THUMB_SIDE);
        assert!(matches!(result, Err(ImageError::Unreadable(_))));
    }

    #[test]
    fn a_truncated_png_is_unreadable() {
        let png = encoded(&gradient(200, 100), ImageFormat::Png);
        for len in [20, 40, png.len() / 2, png.len() - 13] {
            assert!(
                matches!(
                    thumbnail_of("cut.png", &png[..len]),
                    Err(ImageError::Unreadable(_))
                ),
                "{len}"
            );
        }
    }

    #[test]
    fn truncated_images_of_every_format_never_panic() {
        // Some decoders fill in a cut-off end (JPEG shows grey), so a thumbnail is an acceptable
        // outcome; a panic or a size refusal is not.
        let image = gradient(64, 48);
        for format in [
            ImageFormat::Png,
            ImageFormat::Jpeg,
            ImageFormat::Gif,
            ImageFormat::WebP,
        ] {
            let bytes = encoded(&image, format);
            for len in (0..bytes.len()).step_by(7) {
                match thumbnail_of("cut", &bytes[..len]) {
                    Ok(thumb) => assert!(thumb.width <= 64 && thumb.height <= 48),
                    Err(ImageError::Unreadable(_)) => {}
                    Err(error) => panic!("{format:?} cut at {len}: {error}"),
                }
            }
        }
    }

    /// `jpeg` with an APP1 Exif segment right after SOI whose only tag is Orientation = `value`.
    fn with_exif_orientation(jpeg: &[u8], value: u8) -> Vec<u8> {
        let mut tiff = b"MM\0\x2A\0\0\0\x08".to_vec(); // big-endian TIFF, first IFD at 8
        tiff.extend_from_slice(&[0, 1]); // one entry
        tiff.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, value, 0, 0]); // Orientation, SHORT × 1
        tiff.extend_from_slice(&[0, 0, 0, 0]); // no next IFD
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let segment_len = u16::try_from(app1.len() + 2).unwrap();
        let mut out = jpeg[..2].to_vec(); // SOI
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&segment_len.to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn exif_orientation_is_applied_and_no_exif_is_kept() {
        // 40 × 20: red on the left, blue on the right. Orientation 6 means "turn 90° clockwise
        // to show", so upright it is 20 × 40 with red on top.
        let image = RgbImage::from_fn(40, 20, |x, _| {
            if x < 20 {
                Rgb([255, 0, 0])
            } else {
                Rgb([0, 0, 255])
            }
        });
        let jpeg = with_exif_orientation(
            &encoded(&DynamicImage::ImageRgb8(image), ImageFormat::Jpeg),
            6,
        );
        assert!(jpeg.windows(6).any(|w| w == b"Exif\0\0"));

        let thumb = thumbnail_of("phone.jpg", &jpeg).unwrap();
        assert_eq!((thumb.width, thumb.height), (20, 40));
        assert_eq!((thumb.full_width, thumb.full_height), (20, 40));
        assert!(
            !thumb.bytes.windows(4).any(|w| w == b"Exif"),
            "the thumbnail carries no EXIF"
        );
        let upright = decoded(&thumb).to_rgb8();
        let top = upright.get_pixel(10, 5);
        let bottom = upright.get_pixel(10, 35);
        assert!(top[0] > 200 && top[2] < 60, "top is red: {top:?}");
        assert!(
            bottom[2] > 200 && bottom[0] < 60,
            "bottom is blue: {bottom:?}"
        );
    }

    #[test]
    fn exif_orientation_gives_the_full_size_as_shown_when_scaled() {
        let jpeg = with_exif_orientation(&encoded(&gradient(1600, 1200), ImageFormat::Jpeg), 6);
        let thumb = thumbnail_of("phone.jpg", &jpeg).unwrap();
        assert_eq!((thumb.width, thumb.height), (600, 800));
        assert_eq!((thumb.full_width, thumb.full_height), (1200, 1600));
    }

    #[test]
    #[ignore = "a timing report: cargo test --release --lib files::image -- --ignored --nocapture"]
    fn twelve_megapixel_jpeg_thumbnail_time() {
        // xorshift noise: the worst case for a JPEG decoder (nothing compresses).
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let noise = RgbImage::from_fn(4000, 3000, |_, _| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let [r, g, b, ..] = state.to_le_bytes();
            Rgb([r, g, b])
        });
        let jpeg = encoded(&DynamicImage::ImageRgb8(noise), ImageFormat::Jpeg);
        let (_dir, path) = file("noise.jpg", &jpeg);
        let mut times: Vec<_> = (0..5)
            .map(|_| {
                let started = Instant::now();
                let thumb = thumbnail(&path, THUMB_SIDE).unwrap();
                assert_eq!((thumb.width, thumb.height), (800, 600));
                started.elapsed()
            })
            .collect();
        times.sort();
        println!(
            "4000×3000 noisy JPEG ({} KB) → 800×600 thumbnail: median {:?} of {times:?}",
            jpeg.len() / 1024,
            times[2]
        );
    }
}
