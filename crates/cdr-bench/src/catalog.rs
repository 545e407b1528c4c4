//! The fixed vocabularies the generator draws from: Ontario hospitals, names, imaging procedures, and the
//! identifier systems and code systems of the Ontario MI guide (`/work/shared/spec/ontario-uris.json`).

/// Ontario health card number (the patient's JHN identifier).
pub const HCN_SYSTEM: &str = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn";
/// Ontario Provider Registry UPI, which identifies organizations in MI.
pub const UPI_SYSTEM: &str = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-provider-upi";
/// CPSO licence number of a physician.
pub const CPSO_SYSTEM: &str =
    "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-license-physician";
/// DICOM UIDs, written `urn:oid:<uid>`.
pub const DICOM_UID_SYSTEM: &str = "urn:dicom:uid";
/// DICOM modality codes (CID 29).
pub const DCM_SYSTEM: &str = "http://dicom.nema.org/resources/ontology/DCM";
pub const IDENTIFIER_TYPE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
pub const SERVICE_SECTION_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v2-0074";
pub const LOINC_SYSTEM: &str = "http://loinc.org";

/// A hospital: its name and the slug of its local identifier namespaces
/// (`https://fhir.{slug}.example/mrn`, `/accession`, ...).
#[derive(Debug)]
pub struct Hospital {
    pub name: &'static str,
    pub slug: &'static str,
    pub city: &'static str,
}

pub const HOSPITALS: &[Hospital] = &[
    Hospital { name: "Sunnybrook Health Sciences Centre", slug: "sunnybrook", city: "Toronto" },
    Hospital { name: "The Ottawa Hospital", slug: "toh", city: "Ottawa" },
    Hospital { name: "Hôpital Montfort", slug: "montfort", city: "Ottawa" },
    Hospital { name: "Hamilton Health Sciences", slug: "hhs", city: "Hamilton" },
    Hospital { name: "London Health Sciences Centre", slug: "lhsc", city: "London" },
    Hospital { name: "Kingston Health Sciences Centre", slug: "khsc", city: "Kingston" },
    Hospital { name: "Health Sciences North", slug: "hsn", city: "Sudbury" },
    Hospital {
        name: "Thunder Bay Regional Health Sciences Centre",
        slug: "tbrhsc",
        city: "Thunder Bay",
    },
    Hospital { name: "Hôpital Glengarry Memorial", slug: "hgmh", city: "Alexandria" },
    Hospital { name: "Unity Health Toronto", slug: "unityhealth", city: "Toronto" },
];

pub const FAMILY_NAMES: &[&str] = &[
    "Tremblay",
    "Gagné",
    "Bélanger",
    "Côté",
    "Lévesque",
    "Bouchard",
    "Gauthier",
    "Pelletier",
    "Ménard",
    "Bérubé",
    "Lefèbvre",
    "Chénier",
    "Brûlé",
    "Giroux",
    "Dubé",
    "Thériault",
    "Smith",
    "Brown",
    "Wilson",
    "MacDonald",
    "O'Brien",
    "Campbell",
    "Singh",
    "Patel",
    "Nguyễn",
    "Wong",
    "Chen",
    "Li",
    "Kim",
    "Ahmed",
    "Müller",
    "Kowalski",
    "Novák",
    "Rossi",
    "Da Silva",
    "Fernández",
    "Nuñez",
    "Søndergaard",
    "Öztürk",
    "Mohammed",
    "Cardinal",
    "Whitebird",
    "Kakegamic",
    "Moose",
    "Sutherland",
];

pub const GIVEN_NAMES: &[&str] = &[
    "Émilie",
    "Zoé",
    "Chloé",
    "Noémie",
    "Hélène",
    "Geneviève",
    "Léa",
    "Anaïs",
    "François",
    "Jérôme",
    "André",
    "Mathéo",
    "Stéphane",
    "Frédéric",
    "Benoît",
    "René",
    "José",
    "Siobhán",
    "Aarav",
    "Priya",
    "Liam",
    "Olivia",
    "Noah",
    "Emma",
    "Mohammed",
    "Fatima",
    "Wei",
    "Mei",
    "Jun",
    "Sofía",
    "Zoë",
    "Björn",
    "Ingrid",
    "Dmitri",
    "Ana",
    "Malik",
    "Aisha",
    "Tavita",
    "Kiona",
    "Ethan",
];

/// A procedure of the hospitals' local catalogue, with the modalities of the series it produces.
#[derive(Debug)]
pub struct Procedure {
    pub code: &'static str,
    pub display: &'static str,
    pub modalities: &'static [&'static str],
}

/// The local procedure code system, per hospital: `https://fhir.{slug}.example/procedure-code`.
pub const PROCEDURES: &[Procedure] = &[
    Procedure {
        code: "CTHEAD",
        display: "CT tête sans contraste / CT head without contrast",
        modalities: &["CT"],
    },
    Procedure { code: "CTCHEST", display: "CT chest with contrast", modalities: &["CT"] },
    Procedure { code: "CTABPEL", display: "CT abdomen and pelvis", modalities: &["CT"] },
    Procedure {
        code: "MRBRAIN",
        display: "MRI brain with and without gadolinium",
        modalities: &["MR"],
    },
    Procedure { code: "MRKNEE", display: "MRI knee", modalities: &["MR"] },
    Procedure { code: "USABDO", display: "Ultrasound abdomen", modalities: &["US"] },
    Procedure {
        code: "USOBS",
        display: "Échographie obstétricale / obstetrical ultrasound",
        modalities: &["US"],
    },
    Procedure { code: "CRCHEST", display: "Chest X-ray PA and lateral", modalities: &["CR"] },
    Procedure { code: "DXHAND", display: "X-ray hand", modalities: &["DX"] },
    Procedure { code: "MGSCREEN", display: "Screening mammogram", modalities: &["MG"] },
    Procedure { code: "NMBONE", display: "Bone scan", modalities: &["NM"] },
    Procedure { code: "PETCT", display: "PET-CT whole body", modalities: &["PT", "CT"] },
];

/// The display of a DICOM modality code and the SOP Class of its images.
#[must_use]
pub fn modality_details(code: &str) -> (&'static str, &'static str) {
    match code {
        "CT" => ("Computed Tomography", "1.2.840.10008.5.1.4.1.1.2"),
        "MR" => ("Magnetic Resonance", "1.2.840.10008.5.1.4.1.1.4"),
        "US" => ("Ultrasound", "1.2.840.10008.5.1.4.1.1.6.1"),
        "CR" => ("Computed Radiography", "1.2.840.10008.5.1.4.1.1.1"),
        "DX" => ("Digital Radiography", "1.2.840.10008.5.1.4.1.1.1.1"),
        "MG" => ("Mammography", "1.2.840.10008.5.1.4.1.1.1.2"),
        "NM" => ("Nuclear Medicine", "1.2.840.10008.5.1.4.1.1.20"),
        "PT" => ("Positron emission tomography", "1.2.840.10008.5.1.4.1.1.128"),
        _ => ("Other", "1.2.840.10008.5.1.4.1.1.7"),
    }
}

/// Sentences a radiologist's findings are assembled from.
pub const FINDINGS: &[&str] = &[
    "Aucune anomalie aiguë. No acute abnormality.",
    "Small nodule, 4 mm, likely benign; follow-up in 12 months.",
    "Mild degenerative change.",
    "Findings consistent with résolution of the prior effusion.",
    "No fracture or dislocation.",
    "Stable appearance compared with the previous study.",
    "Moderate lesion; correlation clinique recommandée.",
];
