#!/usr/bin/env python3
"""Real documents for the docs suite (test_docs.c), written into DIR.

docx, xlsx, pptx and odt are the zip structures Word, Excel, PowerPoint and
LibreOffice write (content types, relationships, the XML parts that hold the
text), built with Python's zipfile; the PDF is a complete PDF 1.4 (catalog,
page tree, font, Flate-compressed content stream, cross-reference table).
The card is written the way people type it, split over runs where Word
splits it. The hostile ones are what an attacker writes: a ratio bomb, the
overlapping-member bomb, an encrypted member.

Usage: docs_make.py DIR [CARD]
"""
import os
import struct
import sys
import zipfile
import zlib

out = sys.argv[1]
CARD = sys.argv[2] if len(sys.argv) > 2 else "4539 1488 0343 6467"


def put(name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


def zipped(name, members):
    path = os.path.join(out, name)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for member, text in members:
            z.writestr(member, text)


RELS = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships/officeDocument" Target="{target}"/></Relationships>')


def types(overrides):
    parts = "".join('<Override PartName="/%s" ContentType="%s"/>' % o for o in overrides)
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>' + parts + '</Types>')


def docx(name, text):
    half = len(text) // 2
    body = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
            '<w:p><w:r><w:t>Quarterly report &amp; notes</w:t></w:r></w:p>'
            '<w:p><w:r><w:rPr><w:b/></w:rPr><w:t xml:space="preserve">Card: %s</w:t></w:r>'
            '<w:r><w:t xml:space="preserve">%s</w:t></w:r></w:p>'
            '<w:sectPr/></w:body></w:document>') % (text[:half], text[half:])
    zipped(name, [
        ("[Content_Types].xml", types([("word/document.xml", "application/vnd.openxmlformats-officedocument."
                                        "wordprocessingml.document.main+xml")])),
        ("_rels/.rels", RELS.format(target="word/document.xml")),
        ("word/document.xml", body),
    ])


def xlsx(name, text):
    zipped(name, [
        ("[Content_Types].xml", types([("xl/workbook.xml", "application/vnd.openxmlformats-officedocument."
                                        "spreadsheetml.sheet.main+xml")])),
        ("_rels/.rels", RELS.format(target="xl/workbook.xml")),
        ("xl/workbook.xml", '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                            '<sheets><sheet name="Cards" sheetId="1"/></sheets></workbook>'),
        ("xl/sharedStrings.xml", '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
                                 'count="2" uniqueCount="2"><si><t>Name</t></si><si><t>%s</t></si></sst>' % text),
        ("xl/worksheets/sheet1.xml", '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                                     '<sheetData><row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v>'
                                     '</c></row></sheetData></worksheet>'),
    ])


def pptx(name, text):
    zipped(name, [
        ("[Content_Types].xml", types([("ppt/slides/slide1.xml", "application/vnd.openxmlformats-officedocument."
                                        "presentationml.slide+xml")])),
        ("_rels/.rels", RELS.format(target="ppt/presentation.xml")),
        ("ppt/slides/slide1.xml", '<p:sld xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
                                  'xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"><p:cSld>'
                                  '<p:spTree><p:sp><p:txBody><a:p><a:r><a:t>%s</a:t></a:r></a:p></p:txBody>'
                                  '</p:sp></p:spTree></p:cSld></p:sld>' % text),
    ])


def odt(name, text):
    path = os.path.join(out, name)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        # the mimetype member comes first and stored, as ODF requires
        z.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.text",
                   compress_type=zipfile.ZIP_STORED)
        z.writestr("META-INF/manifest.xml",
                   '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
                   '<manifest:file-entry manifest:full-path="/" manifest:media-type='
                   '"application/vnd.oasis.opendocument.text"/></manifest:manifest>')
        z.writestr("content.xml",
                   '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
                   'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:text>'
                   '<text:p>Card:<text:s/>%s</text:p></office:text></office:body></office:document-content>' % text)


def pdf(name, text):
    content = ("BT /F1 12 Tf 72 720 Td (Statement) Tj 0 -16 Td (Card: %s) Tj ET" % text).encode()
    stream = zlib.compress(content)
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> "
        b"/Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    data = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(data))
        data += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(data)
    data += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    data += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    data += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    put(name, data)


def ratio_bomb(name, members, size):
    """members entries of size zero bytes each."""
    path = os.path.join(out, name)
    zeros = bytes(size)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for i in range(members):
            z.writestr("zeros-%04d.bin" % i, zeros)


def overlap_bomb(name, entries):
    """One deflated member, named by `entries` central directory entries that
    all point at the same local header (the overlapping-member construction of
    the non-recursive zip bombs): each would inflate the same stream."""
    plain = bytes(1 << 20)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = comp.compress(plain) + comp.flush()
    crc = zlib.crc32(plain)
    fname = b"kernel.bin"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(data), len(plain), len(fname), 0)
    body = local + fname + data
    central = b""
    for _ in range(entries):
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(data), len(plain),
                               len(fname), 0, 0, 0, 0, 0, 0) + fname
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, entries, entries, len(central), len(body), 0)
    put(name, body + central + end)


def encrypted(name):
    """A zip whose one member has the encryption flag set (bytes are noise)."""
    fname = b"secret.txt"
    payload = os.urandom(64)
    crc = zlib.crc32(payload)
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 1, 0, 0, 0, crc, 64, 64, len(fname), 0)
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 1, 0, 0, 0, crc, 64, 64, len(fname), 0, 0, 0,
                          0, 0, 0) + fname
    body = local + fname + payload
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(body), 0)
    put(name, body + central + end)


if __name__ == "__main__":
    docx("card.docx", CARD)
    docx("clean.docx", "no number here")
    xlsx("card.xlsx", CARD)
    pptx("card.pptx", CARD)
    odt("card.odt", CARD)
    pdf("card.pdf", CARD)
    zipped("card.zip", [("notes/readme.txt", "nothing\n"), ("notes/customer.txt", "Card on file: %s\n" % CARD)])
    ratio_bomb("ratio-bomb.zip", 16, 1 << 20)
    overlap_bomb("overlap-bomb.zip", 1000)
    encrypted("encrypted.zip")
